/**
 * Sensor-like signals: a daily cycle, noise, slow drift, occasional spikes
 * and stuck values. Every (device, metric) has its own seeded generator, so
 * a run is reproducible from `--seed`.
 */

/** mulberry32: a small, fast, seedable PRNG (32-bit state). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a hash of a string, mixed with a seed: independent streams per name. */
export function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Shape of one metric's signal. */
export interface SignalSpec {
  base: number;
  /** Amplitude of the daily cycle. */
  amplitude: number;
  /** Standard deviation of the noise. */
  noise: number;
  /** Drift per hour. */
  driftPerHour: number;
  /** Probability per sample of a spike, and its size (multiples of amplitude). */
  spikeChance: number;
  spikeSize: number;
  /** Probability per sample that the sensor sticks, and for how many samples. */
  stuckChance: number;
  stuckSamples: number;
  /** Decimal places the sensor reports. */
  decimals: number;
}

/** Defaults for common metric names; anything else gets a generic 0-100 signal. */
export const METRIC_PRESETS: Readonly<Record<string, SignalSpec>> = {
  temp: { base: 21, amplitude: 4, noise: 0.15, driftPerHour: 0.05, spikeChance: 0.001, spikeSize: 3, stuckChance: 0.0005, stuckSamples: 50, decimals: 2 },
  humidity: { base: 45, amplitude: 10, noise: 0.5, driftPerHour: -0.1, spikeChance: 0.001, spikeSize: 2, stuckChance: 0.0005, stuckSamples: 50, decimals: 1 },
  pressure: { base: 1013, amplitude: 3, noise: 0.2, driftPerHour: 0.02, spikeChance: 0.0005, spikeSize: 4, stuckChance: 0.0002, stuckSamples: 30, decimals: 1 },
};
const GENERIC: SignalSpec = { base: 50, amplitude: 20, noise: 1, driftPerHour: 0, spikeChance: 0.001, spikeSize: 2, stuckChance: 0.0005, stuckSamples: 40, decimals: 2 };

export function presetFor(metric: string): SignalSpec {
  return METRIC_PRESETS[metric] ?? GENERIC;
}

const DAY_MS = 86_400_000;

/** One sensor channel. `sample(ts)` returns its reading at `ts`. */
export class Signal {
  private readonly rnd: () => number;
  private readonly spec: SignalSpec;
  private readonly phase: number;
  private readonly t0: number;
  private readonly scale: number;
  private stuckLeft = 0;
  private last = 0;
  /** The daily cycle moves by a millionth per second: reuse it within a second. */
  private cycleSecond = Number.NaN;
  private cycle = 0;

  constructor(spec: SignalSpec, seed: number, t0: number) {
    this.spec = spec;
    this.rnd = mulberry32(seed);
    this.phase = this.rnd() * Math.PI * 2;
    this.t0 = t0;
    this.scale = 10 ** spec.decimals;
  }

  sample(ts: number): number {
    if (this.stuckLeft > 0) {
      this.stuckLeft--;
      return this.last;
    }
    const s = this.spec;
    const r = this.rnd;
    if (r() < s.stuckChance) this.stuckLeft = s.stuckSamples;
    // Sum of three uniforms: cheap, roughly normal noise with unit variance after scaling.
    const gauss = (r() + r() + r() - 1.5) * 2;
    const second = Math.floor(ts / 1000);
    if (second !== this.cycleSecond) {
      this.cycleSecond = second;
      this.cycle = Math.sin(((ts % DAY_MS) / DAY_MS) * 2 * Math.PI + this.phase);
    }
    let v =
      s.base +
      s.amplitude * this.cycle +
      (s.driftPerHour * (ts - this.t0)) / 3_600_000 +
      s.noise * gauss;
    if (r() < s.spikeChance) v += (r() < 0.5 ? -1 : 1) * s.spikeSize * s.amplitude;
    this.last = Math.round(v * this.scale) / this.scale;
    return this.last;
  }
}
