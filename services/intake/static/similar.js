// Similar ideas while a person writes (templates/form.html), served at /static/intake/similar.js. As the title and
// description change (debounced, once they hold a few words) it asks GET /api/v1/ideas/similar (analytics', behind
// the proxy) and shows up to three suggestions - the title linked to the idea's page, the score and the shared
// words - in the form's aria-live region. Text only (textContent), never markup. Without JavaScript the form shows
// the same after a first submit.
(function () {
  "use strict";
  var region = document.getElementById("similar-live");
  var title = document.getElementById("title");
  var description = document.getElementById("description");
  if (!region || !title || !description || !window.fetch) { return; }
  var MIN_WORDS = 3;
  var WAIT_MS = 600;
  var MAX_DESCRIPTION = 1500;  // enough to compare; keeps the address short (the proxy limits a request line)
  var timer = null;
  var asked = "";
  var latest = 0;

  function words(text) {
    return text.split(/[\s.,;:!?()"'\/-]+/).filter(function (word) { return word.length > 0; }).length;
  }

  function ideaUrl(suggestion) {
    var url = suggestion.url;
    if (typeof url === "string" && /^(\/(?!\/)|https?:\/\/)/.test(url)) { return url; }
    return (region.dataset.prefix || "") + "/ideas/" + encodeURIComponent(suggestion.idea_id);
  }

  function clear() {
    while (region.firstChild) { region.removeChild(region.firstChild); }
  }

  function show(suggestions) {
    clear();
    if (!suggestions.length) { return; }
    var heading = document.createElement("h2");
    heading.textContent = region.dataset.heading;
    region.appendChild(heading);
    var list = document.createElement("ul");
    suggestions.slice(0, 3).forEach(function (suggestion) {
      var item = document.createElement("li");
      item.className = "suggestion";
      var link = document.createElement("a");
      link.href = ideaUrl(suggestion);
      link.textContent = suggestion.title;
      item.appendChild(link);
      var score = document.createElement("span");
      score.className = "score";
      score.textContent = region.dataset.score + " " + Math.round(Number(suggestion.score) * 100) + " %";
      item.appendChild(score);
      if (suggestion.shared_words && suggestion.shared_words.length) {
        var shared = document.createElement("span");
        shared.className = "shared";
        shared.textContent = region.dataset.shared + ": " + suggestion.shared_words.join(", ");
        item.appendChild(shared);
      }
      list.appendChild(item);
    });
    region.appendChild(list);
  }

  async function ask() {
    var text = title.value.trim() + "\n" + description.value.trim();
    if (words(text) < MIN_WORDS) { asked = ""; clear(); return; }
    if (text === asked) { return; }
    asked = text;
    var mine = ++latest;
    var query = new URLSearchParams({
      title: title.value.trim().slice(0, 200),
      description: description.value.trim().slice(0, MAX_DESCRIPTION)
    });
    try {
      var answer = await fetch("/api/v1/ideas/similar?" + query.toString(), {
        credentials: "same-origin",
        headers: {"accept": "application/json"}
      });
      if (!answer.ok || mine !== latest) { return; }
      var body = await answer.json();
      if (mine === latest) { show(Array.isArray(body.suggestions) ? body.suggestions : []); }
    } catch (error) {
      // no suggestions this time: the person writes on, and the form checks again when it is sent
    }
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(ask, WAIT_MS);
  }

  title.addEventListener("input", later);
  description.addEventListener("input", later);
}());
