// Web Push: offered once, after the user's first ride request or route
// (never on page load), through the service worker and the server's VAPID key.
import { api } from "./api.js";

function keyBytes(b64url) {
  const b64 = (b64url + "===".slice((b64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

export async function offerPush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) return;
  if (Notification.permission === "denied") return;
  try {
    if (Notification.permission === "default") {
      if (localStorage.getItem("lastmile.push.asked")) return;
      localStorage.setItem("lastmile.push.asked", "1");
      if ((await Notification.requestPermission()) !== "granted") return;
    }
    const reg = await navigator.serviceWorker.register("/sw.js");
    await navigator.serviceWorker.ready;
    let sub = await reg.pushManager.getSubscription();
    if (!sub) {
      const { public_key } = await api("GET", "/push-subscriptions/vapid-public-key");
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) });
    }
    await api("POST", "/push-subscriptions", sub.toJSON());
  } catch {
    // Push is a convenience: the socket still carries every event.
  }
}
