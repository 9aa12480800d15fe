/**
 * A batch of `n` readings of one metric, timestamps one second apart ending
 * now. Needs no runtime, so the pure tests in unit/ share it with the socket tests.
 */
export function makeReadings(n: number, metric = "temp", base = Date.now() - n * 1000): [number, string, number][] {
  const out: [number, string, number][] = [];
  for (let i = 0; i < n; i++) out.push([base + i * 1000, metric, i + 0.5]);
  return out;
}
