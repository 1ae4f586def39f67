// The service worker: shows pushed events as notifications when no page
// of the app is in front, and focuses the app when one is tapped.
const TEXT = {
  "ride.matched": (d) => ["You have a driver", d.driver ? `${d.driver.name} is on the way${d.vehicle ? " in " + d.vehicle : ""}.` : "A driver is on the way."],
  "driver.arrived": () => ["Your driver has arrived", "Meet your driver at the station."],
  "ride.cancelled": () => ["Ride cancelled", "Your ride was cancelled."],
  "ride.expired": () => ["Request expired", "No driver came in time. Request again."],
};

self.addEventListener("push", (event) => {
  let msg = {};
  try {
    msg = event.data ? event.data.json() : {};
  } catch {
    return;
  }
  const text = TEXT[msg.kind];
  if (!text) return;
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    if (pages.some((c) => c.visibilityState === "visible")) return; // the page shows it
    const [title, body] = text(msg.data || {});
    await self.registration.showNotification(title, { body, tag: msg.kind, data: { url: "/" } });
  })());
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    if (pages.length) return pages[0].focus();
    return self.clients.openWindow("/");
  })());
});
