/**
 * Structured logs (one JSON object per line, which Workers Logs indexes).
 * Never log tokens or request URLs with query strings: `?token=` is a credential.
 */
type Fields = Record<string, string | number | boolean | undefined>;

function errorFields(err: unknown): Fields {
  if (err instanceof Error) return { error: err.name, detail: err.message, stack: err.stack };
  return { error: String(err) };
}

export const log = {
  info(event: string, fields: Fields = {}): void {
    console.log(JSON.stringify({ level: "info", event, ...fields }));
  },
  warn(event: string, fields: Fields = {}): void {
    console.warn(JSON.stringify({ level: "warn", event, ...fields }));
  },
  error(event: string, err: unknown, fields: Fields = {}): void {
    console.error(JSON.stringify({ level: "error", event, ...fields, ...errorFields(err) }));
  },
};
