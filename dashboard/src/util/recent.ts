/** Recently opened groups, remembered in localStorage (names only, never tokens). */

const KEY = "telemetry-hub.recent-groups";
const MAX = 12;

export interface RecentGroup {
  group: string;
  openedAt: number;
}

function read(): RecentGroup[] {
  try {
    const raw: unknown = JSON.parse(window.localStorage.getItem(KEY) ?? "[]");
    if (!Array.isArray(raw)) return [];
    return raw.flatMap((r: unknown) => {
      if (typeof r !== "object" || r === null) return [];
      const { group, openedAt } = r as { group?: unknown; openedAt?: unknown };
      return typeof group === "string" && typeof openedAt === "number" ? [{ group, openedAt }] : [];
    });
  } catch {
    return [];
  }
}

function write(list: RecentGroup[]): void {
  try {
    window.localStorage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
  } catch {
    // storage full or disabled: recents are a convenience
  }
}

export function recentGroups(): RecentGroup[] {
  return read().sort((a, b) => b.openedAt - a.openedAt);
}

export function rememberGroup(group: string): void {
  write([{ group, openedAt: Date.now() }, ...read().filter((r) => r.group !== group)]);
}

export function forgetGroup(group: string): void {
  write(read().filter((r) => r.group !== group));
}
