/** A commit touching many series goes through the multi-row upserts (10 rows a statement) and the remainder path. */
import { describe, expect, it } from "vitest";
import { aggregates, connectDevice, uniqueGroup } from "./helpers.ts";

describe("commits touching many series", () => {
  it("store every (metric, minute) exactly, across full chunks and the remainder, and merge on a second commit", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "wide");
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const readings: [number, string, number][] = [];
    // 23 metrics x 2 minutes = 46 rows: 4 statements of 10 and 6 single rows.
    for (let m = 0; m < 23; m++) {
      for (let k = 0; k < 4; k++) readings.push([t0 + (k % 2) * 60_000 + k * 1000, `m${m}`, m * 10 + k]);
    }
    sock.send({ type: "batch", seq: 1, readings });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.send({ type: "batch", seq: 2, readings });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    const buckets = await aggregates(group);
    expect(buckets).toHaveLength(46);
    for (let m = 0; m < 23; m++) {
      const mine = buckets.filter((b) => b.metric === `m${m}`);
      // Minute 0 holds k = 0 and 2, minute 1 holds k = 1 and 3; each sent twice.
      expect(mine.map(({ start, count, sum, min, max, last }) => ({ start, count, sum, min, max, last }))).toEqual([
        { start: t0, count: 4, sum: 2 * (m * 20 + 2), min: m * 10, max: m * 10 + 2, last: m * 10 + 2 },
        { start: t0 + 60_000, count: 4, sum: 2 * (m * 20 + 4), min: m * 10 + 1, max: m * 10 + 3, last: m * 10 + 3 },
      ]);
    }
    sock.close();
  });
});
