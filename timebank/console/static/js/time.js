// Moments as people of the region read them: in the region's time zone, whatever the device's
// (a relative's phone abroad, a PC set to UTC). The API sends UTC instants and names no zone for
// the region, so the service's default zone is the console's (one constant, in ui.js).

import { REGION_ZONE as ZONE } from "./ui.js";

const parts = (options) => {
  const format = new Intl.DateTimeFormat("zh-CN", { timeZone: ZONE, hourCycle: "h23", ...options });
  return (iso) => Object.fromEntries(format.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
};
const dayParts = parts({ year: "numeric", month: "2-digit", day: "2-digit" });
const timeParts = parts({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });

/** `2026-12-08 08:30` in the region's zone; `—` for none. */
export function formatTime(iso) {
  if (!iso) return "—";
  const p = timeParts(iso);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** `2026-12-08`: the region's day of an instant (a plain `YYYY-MM-DD` date is returned as it is). */
export function formatDate(iso) {
  if (!iso) return "—";
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return iso;
  const p = dayParts(iso);
  return `${p.year}-${p.month}-${p.day}`;
}
