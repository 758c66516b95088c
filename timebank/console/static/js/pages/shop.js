// Shop operator (门店): redeem a volunteer's code at the counter (preview, then confirm), the
// receipts with refunds inside the shop's window, and the monthly statements as CSV or Excel.

import * as api from "../api.js";
import { everyPage } from "../lookups.js";
import { explainAlso } from "../problems.js";
import {
  dateTime,
  html,
  More,
  ProblemBox,
  Progress,
  useEffect,
  usePaged,
  useRef,
  useState,
  useTask,
} from "../ui.js";

const forShop = (who) => who.kind === "shop";
const shopOf = (who) => who.me.shop;

const PERIODS = { day: "每天", week: "每周", month: "每月", year: "每年" };
const RECEIPT_STATUS = { completed: "已兑换", refunded: "已退回" };

explainAlso({
  "code-invalid": (p) =>
    `请核对 8 位数字，或请志愿者刷新兑换码后重新出示。${
      p.wrong_codes_left !== undefined ? `本店还可输错 ${p.wrong_codes_left} 次。` : ""
    }`,
  "code-expired": () => "兑换码约两分钟内有效，请志愿者刷新后重新出示。",
  "code-used": () => "兑换码只能使用一次，请志愿者生成新的兑换码。",
  "too-many-wrong-codes": (p) =>
    `输错次数过多，本店暂时不能核验兑换码${p.retry_after_seconds ? `，请 ${p.retry_after_seconds} 秒后再试` : ""}。`,
  "insufficient-points": (p) =>
    p.available_points !== undefined
      ? `本次需要 ${p.required_points} 分，志愿者可用积分只有 ${p.available_points} 分。请减少商品或数量。`
      : "志愿者的可用积分不够，请减少商品或数量。",
  "out-of-stock": (p) => (p.in_stock !== undefined ? `库存只剩 ${p.in_stock} 件，请减少数量。` : "库存不足，请减少数量。"),
  "limit-reached": () => "该商品已达到这位志愿者在本周期的兑换限额。",
  "threshold-not-met": (p) =>
    p.required_hours !== undefined ? `兑换该商品需累计服务满 ${p.required_hours} 小时。` : "志愿者的累计服务时长未达到兑换条件。",
  "item-unavailable": () => "该商品当前不在可兑换期内，请选择其他商品。",
  "shop-inactive": () => "门店已暂停或关闭，请联系社区。",
  "refund-not-allowed": (p) =>
    p.refund_window_hours === 0 ? "本店的兑换一经确认不可退回。" : `已超过 ${p.refund_window_hours} 小时的退回期限。`,
  "already-refunded": () => "这笔兑换已经退回过，无需重复操作。",
});

/** Every item of the shop's catalogue, read through every cursor; `reload()` after a sale. */
function useCatalogue(shopId) {
  const [state, setState] = useState({ items: [], error: null, loaded: false });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let live = true;
    everyPage(`/shops/${shopId}/items`, {}, () => live).then(
      (items) => live && setState({ items: items.filter((i) => i.status === "active"), error: null, loaded: true }),
      (error) => live && setState({ items: [], error, loaded: true }),
    );
    return () => {
      live = false;
    };
  }, [shopId, generation]);
  return { ...state, reload: () => setGeneration((n) => n + 1) };
}

function ItemRow({ item, quantity, setQuantity }) {
  const notes = [
    item.stock === null ? "库存不限" : `库存 ${item.stock}`,
    item.limit_quantity ? `${PERIODS[item.limit_period] || ""}限 ${item.limit_quantity} 件` : "",
    item.min_lifetime_hours ? `需累计服务 ${item.min_lifetime_hours} 小时` : "",
  ].filter(Boolean);
  const max = item.stock === null ? 1000 : item.stock;
  return html`<li class="row item" data-testid="item" data-name=${item.name}>
    <div>
      <strong>${item.name}</strong>
      <span class="muted">${item.price_points} 分 · <span data-testid="stock">${notes[0]}</span>${notes
        .slice(1)
        .map((n) => ` · ${n}`)}</span>
    </div>
    <div class="stepper" role="group" aria-label=${`${item.name} 数量`}>
      <button type="button" class="small secondary" aria-label="减少" disabled=${quantity <= 0}
        onClick=${() => setQuantity(quantity - 1)}>−</button>
      <input type="number" inputmode="numeric" min="0" max=${max} value=${quantity} aria-label="数量"
        onInput=${(e) => setQuantity(Math.max(0, Math.min(max, Number(e.currentTarget.value) || 0)))} />
      <button type="button" class="small secondary" aria-label="增加" disabled=${quantity >= max}
        onClick=${() => setQuantity(quantity + 1)}>+</button>
    </div>
  </li>`;
}

function Lines({ lines }) {
  return html`<ul class="lines">
    ${lines.map(
      (l) => html`<li><span>${l.name} × ${l.quantity}</span><span>${l.subtotal_points} 分</span></li>`,
    )}
  </ul>`;
}

/** One receipt: what was taken, the points, its state and until when it can be refunded. */
export function Receipt({ receipt, children }) {
  const refundable = receipt.status === "completed" && receipt.refundable_until;
  return html`<div class="card receipt" data-testid="receipt" data-status=${receipt.status}>
    <div class="receipt-head">
      <strong>${receipt.shop_name}</strong>
      <span class=${`badge status-${receipt.status === "completed" ? "confirmed" : "reversed"}`}>
        ${RECEIPT_STATUS[receipt.status] || receipt.status}
      </span>
    </div>
    <p class="muted">${dateTime(receipt.created_at)} · 单号 ${receipt.id.slice(-8)}</p>
    <${Lines} lines=${receipt.lines} />
    <p class="total">合计 <b data-testid="receipt-total">${receipt.total_points}</b> 分</p>
    ${refundable && html`<p class="muted">可在 ${dateTime(receipt.refundable_until)} 前退回</p>`}
    ${receipt.status === "refunded" &&
    html`<p class="muted">已于 ${dateTime(receipt.refunded_at)} 退回：${receipt.refund_reason}</p>`}
    ${children}
  </div>`;
}

function Preview({ preview }) {
  return html`<div class="card preview" data-testid="preview">
    <h2>兑换明细（尚未扣分）</h2>
    <p>志愿者 <strong>${preview.volunteer_name}</strong></p>
    <${Lines} lines=${preview.lines} />
    <dl class="sums">
      <dt>可用积分</dt><dd data-testid="available-points">${preview.available_points} 分</dd>
      <dt>本次合计</dt><dd data-testid="total-points">${preview.total_points} 分</dd>
      <dt>兑换后剩余</dt><dd data-testid="points-after">${preview.points_after} 分</dd>
    </dl>
  </div>`;
}

function Counter({ who }) {
  const shop = shopOf(who);
  const catalogue = useCatalogue(shop.id);
  const [code, setCode] = useState("");
  const [quantities, setQuantities] = useState({});
  const [checked, setChecked] = useState(null); // {preview, key}: what the operator saw before confirming
  const [receipt, setReceipt] = useState(null);
  const { task, error, run, setError, busy } = useTask();
  const outcome = useRef(null);
  useEffect(() => {
    // The catalogue can be long: bring what the operator must read next into view.
    outcome.current?.scrollIntoView({ block: "nearest" });
  }, [checked, error]);
  useEffect(() => {
    if (receipt) scrollTo(0, 0);
  }, [receipt]);
  const chosen = Object.entries(quantities)
    .filter(([, q]) => q > 0)
    .map(([item_id, quantity]) => ({ item_id, quantity }));
  const request = () => ({ code: code.trim(), items: chosen });
  const changed = (apply) => {
    apply();
    setChecked(null);
    setError(null);
  };
  const check = (event) => {
    event.preventDefault();
    setReceipt(null);
    run("正在核验兑换码", () => api.post(`/shops/${shop.id}/redemptions/preview`, request())).then(
      (preview) => preview && setChecked({ preview, key: api.idempotencyKey() }),
    );
  };
  const confirm = () =>
    run("正在兑换", () =>
      api.post(`/shops/${shop.id}/redemptions`, request(), { idempotencyKey: checked.key }),
    ).then((done) => {
      if (!done) return;
      setReceipt(done);
      setChecked(null);
      setCode("");
      setQuantities({});
      catalogue.reload();
    });
  return html`<section>
    <h1>积分兑换</h1>
    <p class="muted">${shop.name}</p>
    ${receipt &&
    html`<div role="status"><p class="notice">兑换成功，已扣 ${receipt.total_points} 分。</p>
      <${Receipt} receipt=${receipt} /></div>`}
    <form class="card" onSubmit=${check}>
      <label>兑换码
        <input name="code" required autocomplete="off" inputmode="numeric" maxlength="80" value=${code}
          placeholder="8 位数字，或扫码枪扫入的二维码内容"
          onInput=${(e) => changed(() => setCode(e.currentTarget.value))} />
      </label>
      <h2>选择商品</h2>
      <${ProblemBox} error=${catalogue.error} />
      ${!catalogue.loaded && html`<p class="muted">正在加载商品…</p>`}
      ${catalogue.loaded && catalogue.items.length === 0 && !catalogue.error && html`<p class="muted">本店暂无可兑换商品</p>`}
      <ul class="rows">
        ${catalogue.items.map(
          (item) => html`<${ItemRow} key=${item.id} item=${item} quantity=${quantities[item.id] || 0}
            setQuantity=${(q) => changed(() => setQuantities({ ...quantities, [item.id]: q }))} />`,
        )}
      </ul>
      <${Progress} task=${task} />
      <${ProblemBox} error=${error} />
      ${checked && html`<${Preview} preview=${checked.preview} />`}
      <div class="actions" ref=${outcome}>
        ${!checked &&
        html`<button type="submit" disabled=${busy || chosen.length === 0 || !code.trim()}>核验并预览</button>`}
        ${checked &&
        html`<button type="button" disabled=${busy} onClick=${confirm}>确认兑换 ${checked.preview.total_points} 分</button>
          <button type="button" class="secondary" disabled=${busy} onClick=${() => setChecked(null)}>修改</button>`}
      </div>
    </form>
  </section>`;
}

function RefundForm({ receipt, onDone }) {
  const [open, setOpen] = useState(false);
  const { task, error, run, busy } = useTask();
  const submit = (event) => {
    event.preventDefault();
    const reason = event.currentTarget.elements.namedItem("reason").value.trim();
    run("正在退回", () =>
      api.post(`/redemptions/${receipt.id}/refund`, { reason }, { idempotencyKey: api.idempotencyKey() }),
    ).then((refunded) => refunded && onDone(refunded));
  };
  if (!open) return html`<button class="small danger" onClick=${() => setOpen(true)}>退回</button>`;
  return html`<form class="reverse" onSubmit=${submit}>
    <label>退回原因
      <input name="reason" required minlength="2" maxlength="500" placeholder="例如：顾客退货" />
    </label>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error} />
    <div class="actions">
      <button type="submit" class="small danger" disabled=${busy}>确认退回</button>
      <button type="button" class="small secondary" onClick=${() => setOpen(false)}>取消</button>
    </div>
  </form>`;
}

function Receipts({ who }) {
  const shop = shopOf(who);
  const list = usePaged(
    (cursor) => api.get(`/shops/${shop.id}/redemptions`, { query: { cursor, limit: 20 } }),
    [shop.id],
  );
  const now = Date.now();
  return html`<section>
    <h1>兑换记录</h1>
    <${ProblemBox} error=${list.error} />
    ${list.items.map(
      (r) => html`<${Receipt} key=${r.id} receipt=${r}>
        ${r.status === "completed" &&
        r.refundable_until &&
        new Date(r.refundable_until).getTime() > now &&
        html`<${RefundForm} receipt=${r} onDone=${(updated) => list.replace(r.id, updated)} />`}
      <//>`,
    )}
    <${More} list=${list} empty="暂无兑换记录" />
  </section>`;
}

const monthOf = (day) => day.slice(0, 7);
const monthName = (day) => `${Number(day.slice(0, 4))}年${Number(day.slice(5, 7))}月`;

function Statements({ who }) {
  const shop = shopOf(who);
  const list = usePaged(
    (cursor) => api.get(`/shops/${shop.id}/statements`, { query: { cursor, limit: 12 } }),
    [shop.id],
  );
  const { task, error, run, busy } = useTask();
  const [saved, setSaved] = useState(null);
  const download = (s, format) =>
    run(`正在下载 ${monthName(s.month)} ${format === "csv" ? "CSV" : "Excel"}`, (progress) =>
      api.download(
        `/shops/${shop.id}/statements/${monthOf(s.month)}/export`,
        { format },
        `statement-${monthOf(s.month)}.${format}`,
        progress,
      ),
    ).then((file) => file && setSaved(`已下载 ${file.name}`));
  return html`<section>
    <h1>月度结算单</h1>
    <p class="muted">每月结束后由区里出具，出具后不再变动。</p>
    <${Progress} task=${task} />
    <${ProblemBox} error=${error || list.error} />
    ${saved && html`<p class="notice" role="status">${saved}</p>`}
    ${list.items.map(
      (s) => html`<div class="card" key=${s.id} data-testid="statement">
        <h2>${monthName(s.month)}</h2>
        <dl class="sums">
          <dt>兑换</dt><dd>${s.redemption_count} 笔 · ${s.redeemed_points} 分</dd>
          <dt>退回</dt><dd>${s.refund_count} 笔 · ${s.refunded_points} 分</dd>
          <dt>净积分</dt><dd>${s.net_points} 分</dd>
          <dt>结算金额</dt><dd>${s.amount_yuan} 元（每分 ${s.yuan_per_point} 元）</dd>
        </dl>
        <p class="muted">出单时间 ${dateTime(s.issued_at)}</p>
        <div class="actions">
          <button class="secondary" disabled=${busy} onClick=${() => download(s, "csv")}>下载 CSV</button>
          <button class="secondary" disabled=${busy} onClick=${() => download(s, "xlsx")}>下载 Excel</button>
        </div>
      </div>`,
    )}
    <${More} list=${list} empty="暂无结算单" />
  </section>`;
}

export default [
  { path: "/shop/counter", title: "积分兑换", nav: "积分兑换", audience: "门店", allow: forShop, view: Counter },
  { path: "/shop/receipts", title: "兑换记录", nav: "兑换记录", audience: "门店", allow: forShop, view: Receipts },
  { path: "/shop/statements", title: "月度结算单", nav: "结算单", audience: "门店", allow: forShop, view: Statements },
];
