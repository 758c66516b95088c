// The console's shell: who is signed in, the navigation, the 代办 banner, and the router.
//
// A page is `{path, title, nav, allow, view}`: `path` may name parameters (`/activities/:id`),
// `nav` is its label in the menu (none: not in the menu), `allow(who)` says who may open it
// (`who` = {me, acting, kind, roles}), and `view` is a component getting `{who, params, go}`.
// Routing is by the URL's fragment (`#/activities`), so the service serves one page.

import * as api from "./api.js";
import modules from "./modules.js";
import { html, ProblemBox, render, useEffect, useState } from "./ui.js";

const PAGES = modules.flat();

const KINDS = { volunteer: "志愿者", staff: "社区工作人员", shop: "门店", admin: "管理员" };

function route() {
  const path = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  for (const page of PAGES) {
    const names = [];
    const pattern = new RegExp(
      "^" + page.path.replace(/:([a-z_]+)/g, (_, name) => (names.push(name), "([^/]+)")) + "$",
    );
    const match = pattern.exec(path);
    if (match) return { page, params: Object.fromEntries(names.map((n, i) => [n, match[i + 1]])) };
  }
  return { page: null, params: {} };
}

export function go(path) {
  location.hash = `#${path}`;
}

function useRoute() {
  const [current, setCurrent] = useState(route);
  useEffect(() => {
    const changed = () => setCurrent(route());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return current;
}

/** The caller's profile (GET /me, as themselves), reloaded when the login changes. */
function useWho(session) {
  const [state, setState] = useState({ me: null, error: null });
  const signedIn = session !== null;
  useEffect(() => {
    if (!signedIn) return setState({ me: null, error: null });
    let live = true;
    api
      .get("/me")
      .then((me) => live && setState({ me, error: null }))
      .catch((error) => live && setState({ me: null, error }));
    return () => {
      live = false;
    };
  }, [signedIn]);
  if (!state.me) return { ...state, who: null };
  const who = { me: state.me, kind: state.me.kind, roles: state.me.roles, acting: session?.acting ?? null };
  return { ...state, who };
}

function home(who) {
  return PAGES.find((p) => p.nav && p.allow(who));
}

function Banner({ acting }) {
  if (!acting) return null;
  return html`<div class="acting" role="note">
    <span>代办: 为 <strong>${acting.name}</strong> 操作</span>
    <button class="small" onClick=${() => (api.actFor(null), go("/residents"))}>结束代办</button>
  </div>`;
}

function Shell({ who, children }) {
  const [open, setOpen] = useState(false);
  const nav = PAGES.filter((p) => p.nav && p.allow(who));
  const signOut = async () => {
    await api.signOut();
    go("/signin");
  };
  return html`<header class="top">
      <a class="brand" href="#/">时间银行</a>
      <span class="who">${who.me.real_name} · ${KINDS[who.kind] || who.kind}</span>
      <button class="menu-button small secondary" aria-expanded=${open} onClick=${() => setOpen(!open)}>
        菜单
      </button>
      <nav class=${open ? "nav open" : "nav"} onClick=${() => setOpen(false)}>
        ${nav.map((p) => html`<a href=${`#${p.path}`}>${p.nav}</a>`)}
        <button class="link" onClick=${signOut}>退出登录</button>
      </nav>
    </header>
    <${Banner} acting=${who.acting} />
    <main>${children}</main>`;
}

function App() {
  const [session, setSession] = useState(api.session());
  useEffect(() => api.onSession(setSession), []);
  const { page, params } = useRoute();
  const { who, error } = useWho(session);

  if (!session || (page && page.path === "/signin")) {
    const SignIn = PAGES.find((p) => p.path === "/signin").view;
    return html`<main class="narrow"><${SignIn} go=${go} /></main>`;
  }
  if (error) {
    return html`<main class="narrow">
      <${ProblemBox} error=${error} />
      <button class="wide" onClick=${() => location.reload()}>重试</button>
      <button class="wide secondary" onClick=${() => api.signOut().then(() => go("/signin"))}>退出登录</button>
    </main>`;
  }
  if (!who) return html`<p class="loading">正在加载…</p>`;
  const target = page && page.path !== "/" ? page : home(who);
  if (!target) {
    return html`<${Shell} who=${who}><p>此账号暂无可用页面。</p><//>`;
  }
  if (!target.allow(who)) {
    return html`<${Shell} who=${who}>
      <section class="card denied" role="alert">
        <h1>无权访问此页面</h1>
        <p>此页面仅供${target.audience || "其他身份"}使用。</p>
        <a href="#/">返回首页</a>
      </section>
    <//>`;
  }
  const View = target.view;
  document.title = `${target.title} · 时间银行`;
  return html`<${Shell} who=${who}><${View} who=${who} params=${params} go=${go} /><//>`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "loading" line, until the modules ran
render(html`<${App} />`, root);
