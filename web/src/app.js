// LastMile's web app: one page, three roles. The entry point signs people
// in, keeps the one WebSocket, and shows the screen of the user's role.
import "./app.css";
import { api, clearSession, session, whenUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import { Live } from "./live.js";
import { authScreen } from "./auth.js";
import { riderScreen } from "./rider.js";
import { driverScreen } from "./driver.js";
import { operatorScreen } from "./operator.js";

const main = document.getElementById("main");
const conn = document.getElementById("conn");
const who = document.getElementById("who");
const signoutButton = document.getElementById("signout");

let current = null; // {live, screen} of the signed-in user
let shownAuth = ""; // "signin" or "signup" while that form is shown

const screens = { rider: riderScreen, driver: driverScreen, operator: operatorScreen };

// go shows path (and records it in history).
export function go(path, replaceState = false) {
  if (location.pathname !== path) history[replaceState ? "replaceState" : "pushState"]({}, "", path);
  route();
}

function setConn(state) {
  conn.dataset.state = state;
  conn.textContent = { online: "Online", offline: "Offline — reconnecting…", connecting: "Connecting…" }[state] || "";
}

function stopCurrent() {
  if (!current) return;
  current.live.stop();
  if (current.screen && current.screen.stop) current.screen.stop();
  current = null;
}

function signedOut() {
  stopCurrent();
  clearSession();
  who.textContent = "";
  signoutButton.hidden = true;
  conn.textContent = "";
  delete conn.dataset.state;
  go("/signin", true);
}

async function signOut() {
  try {
    await api("POST", "/auth/logout", undefined, { quiet401: true });
  } catch {
    // Signed out here whatever the server says.
  }
  signedOut();
}

function route() {
  const s = session();
  const path = location.pathname;
  if (!s) {
    stopCurrent();
    const mode = path === "/signup" ? "signup" : "signin";
    if (path !== "/" + mode) history.replaceState({}, "", "/" + mode);
    if (shownAuth === mode) return; // keep what the user is typing
    shownAuth = mode;
    document.title = (mode === "signup" ? "Sign up" : "Sign in") + " · LastMile";
    replace(main, authScreen(mode, { onSignedIn: () => go("/" + session().user.role, true), go }));
    return;
  }
  shownAuth = "";
  const role = s.user.role;
  if (path !== "/" + role) history.replaceState({}, "", "/" + role);
  if (current && current.role === role && current.userId === s.user.id) return;
  stopCurrent();
  who.textContent = `${s.user.name} (${role})`;
  signoutButton.hidden = false;
  document.title = { rider: "Ride", driver: "Drive", operator: "Operations" }[role] + " · LastMile";
  let screen = null;
  const live = new Live(s.user.id, {
    onEvent: (e) => screen && screen.onEvent(e),
    onState: (st) => {
      setConn(st);
      if (st === "online" && screen && screen.onOnline) screen.onOnline();
    },
    onResync: () => screen && screen.refresh && screen.refresh(),
    onError: (m) => screen && screen.onError && screen.onError(m),
  });
  current = { live, screen: null, role, userId: s.user.id };
  const make = screens[role];
  if (!make) {
    replace(main, h("p", {}, "This account's role has no screen here."));
    return;
  }
  screen = make({ user: s.user, live });
  current.screen = screen;
  replace(main, screen.el);
  if (screen.mounted) screen.mounted();
  live.start();
}

// A request answered 401 (signed out elsewhere, token expired) signs out
// here too; late answers after signing out change nothing.
whenUnauthorized(() => {
  if (session()) signedOut();
});
signoutButton.addEventListener("click", signOut);
window.addEventListener("popstate", route);
route();

// Confirm the stored session is still good; the screen is already up.
if (session()) {
  api("GET", "/me").then((u) => {
    const s = session();
    if (s) localStorage.setItem("lastmile.user", JSON.stringify(u));
  }).catch(() => {});
}
