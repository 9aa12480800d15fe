/**
 * A null hub for measuring the simulator itself: speaks just enough of the
 * device protocol (hello, then an ack per batch) and does no other work, so
 * the simulator, not the hub, is what runs out of CPU. Run as a child
 * process (its own core): `node device-sim/bench/sink.ts <port>`; it prints
 * `ready <port>` and, every second, `stats <batches> <connections>`.
 *
 * It reads the batch's seq without decoding the whole frame when the frame
 * starts the way schema/cbor.ts writes it ({type: "batch", seq, ...}), and
 * falls back to a full decode otherwise.
 */
import { WebSocketServer } from "ws";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";

const port = Number(process.argv[2] ?? "0");
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false, maxPayload: 2 * 1024 * 1024 });
const HELLO = encodeCbor({ type: "hello", v: 1, lastSeq: 0 });
// a3 64 "type" 65 "batch" 63 "seq" <uint>
const PREFIX = Buffer.from([0xa3, 0x64, 0x74, 0x79, 0x70, 0x65, 0x65, 0x62, 0x61, 0x74, 0x63, 0x68, 0x63, 0x73, 0x65, 0x71]);
let batches = 0;

function seqOf(b: Buffer): number | null {
  if (b.length > PREFIX.length + 9 && b.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) === 0) {
    const at = PREFIX.length;
    const ib = b[at] ?? 0;
    if (ib < 24) return ib;
    if (ib === 24) return b[at + 1] ?? null;
    if (ib === 25) return b.readUInt16BE(at + 1);
    if (ib === 26) return b.readUInt32BE(at + 1);
    if (ib === 27) return Number(b.readBigUInt64BE(at + 1));
  }
  const d = decodeCbor(b);
  if (!d.ok || typeof d.value !== "object" || d.value === null || !("seq" in d.value)) return null;
  return typeof d.value.seq === "number" ? d.value.seq : null;
}

wss.on("connection", (ws) => {
  ws.send(HELLO);
  ws.on("message", (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const seq = seqOf(data);
    if (seq === null) return;
    batches++;
    ws.send(encodeCbor({ type: "ack", seq }));
  });
});
wss.on("listening", () => {
  const addr = wss.address();
  process.stdout.write(`ready ${typeof addr === "object" && addr ? addr.port : port}\n`);
});
setInterval(() => process.stdout.write(`stats ${batches} ${wss.clients.size}\n`), 1000).unref();
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
