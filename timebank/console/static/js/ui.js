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

/** A local day `YYYY-MM-DD`, `offset` days from today. */
export function today(offset = 0) {
  const d = new Date();
  d.setDate(d.getDate() + offset);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** `12月8日 08:30` (with the year when it is not this one). */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const year = d.getFullYear() === new Date().getFullYear() ? "" : `${d.getFullYear()}年`;
  return `${year}${d.getMonth() + 1}月${d.getDate()}日 ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `08:30`. */
export function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Minutes as hours with one decimal, as the API shows them (`90` → `1.5`). */
export function hours(minutes) {
  const tenths = Math.floor((minutes * 10 + 30) / 60);
  return `${Math.floor(tenths / 10)}.${tenths % 10}`;
}

/** The value of a form's named field. */
export const field = (form, name) => form.elements.namedItem(name).value.trim();

/**
 * Moments in the region's time zone, not the browser's (a phone abroad, a PC set to UTC):
 * `regionTime(iso, who)` → `12月8日 08:30`, `{date: true}` → `2026年12月8日`. The zone is the
 * region's when the API names it, else Asia/Shanghai.
 */
export function regionTime(iso, who, { date = false } = {}) {
  if (!iso) return "—";
  const timeZone = who?.me?.region?.timezone || "Asia/Shanghai";
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-GB", {
      timeZone, year: "numeric", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]),
  );
  const day = `${parts.year}年${Number(parts.month)}月${Number(parts.day)}日`;
  return date ? day : `${day} ${parts.hour}:${parts.minute}`;
}
