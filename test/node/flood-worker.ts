/**
 * The attackers of test/node/flood.test.ts, in a worker thread so that their
 * busy loop does not delay the test's own measurements. Each token sends
 * 1-reading batches (new seqs), duplicates and invalid frames as fast as its
 * socket drains, reconnects whenever it is closed (or refused) and stops by
 * itself after `durationMs`.
 */
import { parentPort, workerData } from "node:worker_threads";
import WebSocket from "ws";
import { encodeCbor } from "../../schema/cbor.ts";

export interface FloodOptions {
  url: string;
  group: string;
  /** Device id -> token. */
  tokens: Record<string, string>;
  durationMs: number;
  /** Bytes a socket may have queued before the sender waits for it to drain. */
  maxBufferedBytes: number;
  /** Frames per second per token (0: as fast as the socket drains). */
  framesPerSec: number;
}

export interface FloodStats {
  sent: number;
  answers: number;
  connects: number;
  /** HTTP status of refused upgrades, and close codes, with how often each was seen. */
  refused: Record<string, number>;
  closes: Record<string, number>;
  /** Error codes of error frames received (decoded only by their code text). */
  errors: Record<string, number>;
}

const opts = workerData as FloodOptions;
const stats: FloodStats = { sent: 0, answers: 0, connects: 0, refused: {}, closes: {}, errors: {} };
const until = Date.now() + opts.durationMs;
const bump = (m: Record<string, number>, k: string): void => {
  m[k] = (m[k] ?? 0) + 1;
};

// The hub's answers are counted, not decoded: the attacker does not care.
const CODES = ["rate_limited", "overloaded", "bad_readings"];

function flood(device: string, token: string): Promise<void> {
  let seq = 1;
  return new Promise((done) => {
    const connect = (): void => {
      if (Date.now() >= until) {
        done();
        return;
      }
      stats.connects++;
      const ws = new WebSocket(`${opts.url.replace(/^http/, "ws")}/v1/groups/${opts.group}/devices/${device}/ws`, {
        headers: { authorization: `Bearer ${token}` },
        perMessageDeflate: false,
      });
      let open = false;
      ws.on("unexpected-response", (_req, res) => {
        bump(stats.refused, String(res.statusCode));
        res.resume();
        ws.terminate();
      });
      ws.on("error", () => {});
      ws.on("message", (data: Buffer) => {
        stats.answers++;
        const text = data.toString("latin1");
        for (const c of CODES) if (text.includes(c)) bump(stats.errors, c);
      });
      ws.on("open", () => {
        open = true;
        const start = Date.now();
        let sentHere = 0;
        const pump = (): void => {
          if (ws.readyState !== WebSocket.OPEN) return;
          const now = Date.now();
          if (now >= until) {
            ws.close(1000, "done");
            return;
          }
          // As many frames as the rate allows by now (or the socket takes), without queueing more than the cap.
          const owed = opts.framesPerSec > 0 ? Math.floor(((now - start) * opts.framesPerSec) / 1000) - sentHere : Infinity;
          for (let n = 0; n < owed && ws.bufferedAmount < opts.maxBufferedBytes; n++) {
            sentHere++;
            const k = stats.sent++ % 3;
            const now = Date.now();
            const frame =
              k === 0
                ? { type: "batch", seq: seq++, readings: [[now, "flood", 1]] }
                : k === 1
                  ? { type: "batch", seq: 1, readings: [[now, "flood", 1]] }
                  : { type: "batch", seq: seq, readings: [] };
            ws.send(encodeCbor(frame));
          }
          if (opts.framesPerSec > 0) setTimeout(pump, 5);
          else setImmediate(pump);
        };
        pump();
      });
      ws.on("close", (code) => {
        if (open) bump(stats.closes, String(code));
        // Reconnect at once, as an attacker would; a refused upgrade is retried after a breath.
        setTimeout(connect, open ? 0 : 20);
      });
    };
    connect();
  });
}

await Promise.all(Object.entries(opts.tokens).map(([d, t]) => flood(d, t)));
parentPort?.postMessage(stats);
