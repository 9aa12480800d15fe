/**
 * The half of the docs check (test/node/docs.test.ts) whose commands need
 * no `npm start` to talk to: --help, `npm start -- <flags>` and the dev
 * servers on free ports of their own, the generators. In a file of its own
 * so vitest runs it beside the other half. A command that matches none of
 * these is docs.test.ts's to run or to fail.
 */
import { describe, it } from "vitest";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { NOT_RUN, docCommands } from "./docs-commands.ts";
import { STANDALONE } from "./docs-run.ts";

describe("every command in README.md and docs/*.md that needs no npm start", () => {
  for (const c of docCommands(ROOT)) {
    if (NOT_RUN[c.text] !== undefined) continue;
    const runner = STANDALONE.find(([re]) => re.test(c.text))?.[1];
    if (runner) it(`${c.text}  (${c.where[0]})`, () => runner(c.text), 150_000);
  }
});
