// What every page shares: htm bound to Preact, hooks, and the few components and formatters
// every page uses (problem box, progress, paged lists, dates and hours).

import { h, render } from "../vendor/preact-11.2.0/preact.mjs";
import { useCallback, useEffect, useRef, useState } from "../vendor/preact-11.2.0/hooks.mjs";
import htm from "../vendor/htm-3.1.1/htm.mjs";
import { explain } from "./problems.js";

export const html = htm.bind(h);
export { render, useCallback, useEffect, useRef, useState };

/** A problem as people read it: Chinese title and detail, the API's own words smaller. */
export function ProblemBox({ error }) {
  if (!error) return null;
  const { title, detail, original } = explain(error);
  return html`<div class="problem" role="alert">
    <strong class="problem-title">${title}</strong>
    <p class="problem-detail">${detail}</p>
    ${original && html`<p class="problem-original">${original}</p>`}
  </div>`;
}

/** A row of buttons choosing one of `options` (`[value, label]` pairs). */
export function Segmented({ label, options, value, onChange }) {
  return html`<div class="segmented" role="group" aria-label=${label}>
    ${options.map(
      ([key, text]) =>
        html`<button class=${value === key ? "chosen" : "secondary"} aria-pressed=${value === key}
          onClick=${() => onChange(key)}>${text}</button>`,
    )}
  </div>`;
}

/** A long action in progress: what is being done, and how far (when known). */
export function Progress({ task }) {
  if (!task) return null;
  const percent = task.total ? Math.min(100, Math.round((task.done / task.total) * 100)) : null;
  return html`<div class="progress" role="status" aria-live="polite">
    <p>${task.label}${percent !== null ? ` ${percent}%` : "…"}</p>
    <div class=${percent === null ? "bar bar-busy" : "bar"}>
      <div class="bar-fill" style=${percent === null ? undefined : { width: `${percent}%` }}></div>
    </div>
  </div>`;
}

/**
 * Runs long actions one at a time: `run(label, work)` shows progress while `work(progress)` runs
 * (call `progress(done, total)` to move the bar) and keeps its problem for `ProblemBox`.
 */
export function useTask() {
  const [task, setTask] = useState(null);
  const [error, setError] = useState(null);
  const run = useCallback(async (label, work) => {
    setError(null);
    setTask({ label, done: 0, total: null });
    try {
      return await work((done, total) => setTask({ label, done, total }));
    } catch (problem) {
      setError(problem);
      return undefined;
    } finally {
      setTask(null);
    }
  }, []);
  return { task, error, run, setError, busy: task !== null };
}

/**
 * A keyset-paginated list of the API (`{items, next_cursor}`): `load(cursor)` fetches one page;
 * `more()` appends the next. `deps` restart the list from its first page.
 */
export function usePaged(load, deps) {
  const [items, setItems] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const generation = useRef(0);
  const fetchPage = useCallback(async (after, append) => {
    const mine = ++generation.current;
    setLoading(true);
    setError(null);
    try {
      const page = await load(after);
      if (mine !== generation.current) return;
      setItems((old) => (append ? [...old, ...page.items] : page.items));
      setCursor(page.next_cursor ?? null);
    } catch (problem) {
      if (mine === generation.current) setError(problem);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, deps);
  useEffect(() => {
    fetchPage(null, false);
  }, [fetchPage]);
  return {
    items,
    loading,
    error,
    hasMore: cursor !== null,
    more: () => fetchPage(cursor, true),
    reload: () => fetchPage(null, false),
    replace: (id, item) => setItems((old) => old.map((x) => (x.id === id ? item : x))),
  };
}

/** The end of a paged list: a button for the next page, or a quiet "no more". */
export function More({ list, empty = "暂无记录" }) {
  if (list.loading) return html`<p class="muted">正在加载…</p>`;
  if (list.items.length === 0 && !list.error) return html`<p class="muted">${empty}</p>`;
  if (list.hasMore) return html`<button class="secondary wide" onClick=${list.more}>加载更多</button>`;
  return html`<p class="muted end">已显示全部 ${list.items.length} 条</p>`;
}

const pad = (n) => String(n).padStart(2, "0");

/** The region's day `YYYY-MM-DD`, `offset` days from today. */
export function today(offset = 0) {
  const now = regionParts(Date.now());
  const d = new Date(Date.UTC(now.year, now.month - 1, now.day + offset));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** `12月8日 08:30` in the region's zone (with the year when it is not this one). */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = regionParts(iso);
  const year = d.year === regionParts(Date.now()).year ? "" : `${d.year}年`;
  return `${year}${d.month}月${d.day}日 ${pad(d.hour)}:${pad(d.minute)}`;
}

/** `08:30` in the region's zone. */
export function clock(iso) {
  if (!iso) return "—";
  const d = regionParts(iso);
  return `${pad(d.hour)}:${pad(d.minute)}`;
}

/** Minutes as hours with one decimal, as the API shows them (`90` → `1.5`). */
export function hours(minutes) {
  const tenths = Math.floor((minutes * 10 + 30) / 60);
  return `${Math.floor(tenths / 10)}.${tenths % 10}`;
}

/** The value of a form's named field. */
export const field = (form, name) => form.elements.namedItem(name).value.trim();

/**
 * Times are shown in the region's zone, not the browser's (a phone abroad, a PC set to UTC). The
 * API does not name the region's zone; every region so far is in China.
 */
export const REGION_ZONE = "Asia/Shanghai";

const REGION_FORMAT = new Intl.DateTimeFormat("en-GB", {
  timeZone: REGION_ZONE, year: "numeric", month: "numeric", day: "numeric",
  hour: "numeric", minute: "numeric", hourCycle: "h23",
});

/** `{year, month, day, hour, minute}` (numbers) of a moment (ISO text or ms) in the region's zone. */
export function regionParts(moment) {
  const parts = REGION_FORMAT.formatToParts(new Date(moment));
  return Object.fromEntries(parts.filter((p) => p.type !== "literal").map((p) => [p.type, Number(p.value)]));
}

/** `2026年12月8日`: a moment's day in the region, or a calendar day (`2026-12-08`) as it is. */
export function dayName(value) {
  if (!value) return "—";
  const [year, month, day] = /^\d{4}-\d{2}-\d{2}$/.test(value)
    ? value.split("-").map(Number)
    : ((d) => [d.year, d.month, d.day])(regionParts(value));
  return `${year}年${month}月${day}日`;
}
