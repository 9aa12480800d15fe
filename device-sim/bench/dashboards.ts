/**
 * Child process for bench:fanout: opens N dashboard sockets on a group's live
 * route and acks every frame, as the real page does, on its own core so the
 * load generator's process is not also the dashboards'.
 *   node device-sim/bench/dashboards.ts <ws-url-with-token> <count>
 * Prints `ready` once every snapshot arrived, then `frames <n>` every second.
 */
import WebSocket from "ws";

const url = process.argv[2] ?? "";
const count = Number(process.argv[3] ?? "0");
let frames = 0;
let ready = 0;
for (let i = 0; i < count; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on("message", (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as { type: string; seq: number };
    frames++;
    ws.send(JSON.stringify({ type: "ack", seq: frame.seq, delta: true }));
    if (frame.type === "snapshot" && ++ready === count) process.stdout.write("ready\n");
  });
  ws.on("error", (err) => process.stderr.write(`dashboard ${i}: ${err.message}\n`));
}
setInterval(() => process.stdout.write(`frames ${frames}\n`), 1000).unref();
process.on("SIGTERM", () => process.exit(0));
