/**
 * Realistic-looking readings for the benchmarks: a device samples a few
 * sensors together at each tick, so a batch interleaves its metrics; values
 * random-walk around plausible levels and are never integers; timestamps
 * end at "now", spaced like a 25 Hz sampler.
 */
import type { Reading } from "../../schema/protocol.ts";

interface Sensor {
  metric: string;
  level: number;
  step: number;
  min: number;
  max: number;
}

const SENSORS: readonly Omit<Sensor, "level">[] = [
  { metric: "temp_c", step: 0.05, min: -20, max: 60 },
  { metric: "humidity_pct", step: 0.2, min: 0, max: 100 },
  { metric: "pressure_hpa", step: 0.1, min: 900, max: 1100 },
  { metric: "battery_v", step: 0.001, min: 3.0, max: 4.2 },
];
const START_LEVELS = [21.5, 45.3, 1013.2, 3.91];

/** Number of distinct metrics a source emits. */
export const METRIC_COUNT = SENSORS.length;

/** Spacing of two ticks, ms. */
const TICK_MS = 40;

export class ReadingSource {
  private readonly sensors: Sensor[];
  private rand: number;

  /**
   * `seed` makes each device's walk different but repeatable. `metrics`
   * names the sensors (default the four above); past four they take the
   * four's ranges again, in turn.
   */
  constructor(seed: number, metrics?: readonly string[]) {
    this.rand = (seed * 2654435761) >>> 0 || 1;
    const names = metrics ?? SENSORS.map((s) => s.metric);
    this.sensors = names.map((metric, i) => {
      const k = i % SENSORS.length;
      return { ...(SENSORS[k] as Omit<Sensor, "level">), metric, level: (START_LEVELS[k] ?? 0) + this.noise() };
    });
  }

  /** xorshift32 in [-0.5, 0.5): cheap enough to keep the load generator's cost on encoding and I/O. */
  private noise(): number {
    let x = this.rand;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rand = x >>> 0;
    return this.rand / 4294967296 - 0.5;
  }

  /** `size` readings (rounded down to whole ticks, at least one) whose last tick is at `now`. */
  batch(size: number, now: number): Reading[] {
    const n = this.sensors.length;
    const ticks = Math.max(1, Math.floor(size / n));
    const out: Reading[] = new Array<Reading>(ticks * n);
    let k = 0;
    for (let t = 0; t < ticks; t++) {
      const ts = now - (ticks - 1 - t) * TICK_MS;
      for (const s of this.sensors) {
        let v = s.level + s.step * this.noise() * 2;
        if (v < s.min || v > s.max) v = s.level;
        // A sensor that happens to read an integer would go out as a CBOR int; nudge it.
        if (Number.isInteger(v)) v += s.step / 7;
        s.level = v;
        out[k++] = [ts, s.metric, v];
      }
    }
    return out;
  }
}
