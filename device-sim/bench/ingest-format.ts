/** Number formats of the ingest benchmark's progress lines and summary. */
import type { CpuUse } from "./ingest-measure.ts";

export const fmtInt = (n: number): string => Math.round(n).toLocaleString("en-US");
export const fmtMs = (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1));
export const fmtX = (n: number): string => `${n.toFixed(n < 10 ? 2 : 1)}x`;
export const fmtCore = (n: number | null): string => (n === null ? "?" : n.toFixed(2));
export const fmtCpu = (c: CpuUse): string => `cpu node ${fmtCore(c.node)}, workerd ${fmtCore(c.workerd)}, other ${fmtCore(c.other)}`;
