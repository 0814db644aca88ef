// The console's entry: sign in and out, the navigation the role may use, the live panel and the router.

import { h, replace, showError, clearError } from "./js/dom.js";
import { currentKey, currentWho, remember, forget } from "./js/session.js";
import { request } from "./js/api.js";
import { may } from "./js/access.js";
import { Router, HOME } from "./js/router.js";
import { LiveStream } from "./js/live.js";
import { showEvent } from "./js/live_panel.js";

const NAV = [
  ["#/leads", "Leads", "/api/v1/leads"],
  ["#/reviews", "Review queues", "/api/v1/review-queues"],
  ["#/campaigns", "Campaigns", "/api/v1/campaigns"],
  ["#/escalations", "Escalations", "/api/v1/escalations"],
  ["#/models", "Models", "/api/v1/models"],
  ["#/system", "System status", "/api/v1/system/status"],
  ["#/keys", "API keys", "/api/v1/keys"],
  ["#/audit", "Audit", "/api/v1/audit"],
];

const $ = (id) => document.getElementById(id);
let stream = null;
let router = null;

function markCurrent(path) {
  for (const link of $("nav-links").querySelectorAll("a")) {
    const target = link.getAttribute("href").slice(1);
    if (path === target || path.startsWith(target + "/")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showApp() {
  const who = currentWho();
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("who").hidden = false;
  replace($("who"), "Signed in", who.name ? ` as ${who.name}` : "", h("span", { class: "role", "data-role": who.role }, who.role));
  replace($("nav-links"), NAV.filter(([, , read]) => may("GET", read)).map(([href, text]) => h("li", {}, h("a", { href }, text))));

  stream = new LiveStream(currentKey());
  stream.addEventListener("state", (e) => { $("live-state").textContent = e.detail; });
  stream.addEventListener("event", (e) => showEvent($("live-events"), e.detail));
  stream.start();

  if (!location.hash || location.hash === "#/") location.replace(HOME);
  router = new Router($("main"), { live: stream, onNavigate: markCurrent });
  router.start();
}

function showSignIn(error) {
  if (stream) stream.stop();
  if (router) router.stop();
  stream = router = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("who").hidden = true;
  replace($("live-events"));
  $("signin").hidden = false;
  if (error) showError($("signin-error"), error);
  $("api-key").focus();
}

function signOut(error) {
  forget();
  showSignIn(error);
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("api-key");
  const button = event.submitter || $("signin-form").querySelector("button");
  const key = input.value.trim();
  clearError($("signin-error"));
  button.disabled = true;
  try {
    // Who the key is, and so which pages and controls its role gets; a bad key is refused here.
    const who = await request("GET", "/api/v1/me", { key });
    remember(key, who);
    input.value = "";
    showApp();
  } catch (error) {
    showError($("signin-error"), error);
    input.select();
  } finally {
    button.disabled = false;
  }
});

$("sign-out").addEventListener("click", () => signOut());
// The hash is the router's: the skip link moves the focus without changing it.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  if ($("app").hidden) $("api-key").focus();
  else $("main").focus();
});
window.addEventListener("mas:unauthenticated", (event) => signOut(event.detail));

if (currentKey() && currentWho()) showApp();
else showSignIn();
