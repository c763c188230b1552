// My feed, live: new notifications from /api/v1/people/me/stream (server-sent events, the session cookie signs
// in) are put at the top of the list. Text only (textContent): nothing from an event becomes markup.
(function () {
  "use strict";
  var list = document.getElementById("feed");
  if (!list || !window.EventSource) return;
  var prefix = list.dataset.prefix || "";
  var kinds = {};
  try { kinds = JSON.parse(list.dataset.kinds || "{}"); } catch (e) { kinds = {}; }

  function when(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return "";
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function show(item) {
    if (!item || !item.notification_id || document.getElementById("n-" + item.notification_id)) return;
    var li = document.createElement("li");
    li.id = "n-" + item.notification_id;
    var kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = kinds[item.kind] || item.kind;
    var time = document.createElement("time");
    time.dateTime = item.time || "";
    time.textContent = when(item.time);
    var text = document.createElement("p");
    text.textContent = item.text || "";
    var link = document.createElement("a");
    var challenge = typeof item.path === "string" && item.path.indexOf("/challenges/") === 0;
    link.href = challenge
      ? prefix + "/challenges/" + encodeURIComponent(item.path.slice("/challenges/".length))
      : prefix + "/ideas/" + encodeURIComponent(item.idea_id);
    link.textContent = (challenge ? list.dataset.openChallenge : list.dataset.open) || "";
    li.append(kind, time, text, link);
    list.prepend(li);
    var empty = document.getElementById("feed-empty");
    if (empty) empty.hidden = true;
  }

  var source = new EventSource("/api/v1/people/me/stream");
  source.addEventListener("open", function () {
    var live = document.getElementById("feed-live");
    if (live) live.hidden = false;
  });
  source.addEventListener("notification", function (event) {
    try { show(JSON.parse(event.data)); } catch (e) { /* a frame we do not understand: skip it */ }
  });
})();
