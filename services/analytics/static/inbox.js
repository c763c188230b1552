// The inbox's actions (templates/inbox.html), served at /static/analytics/inbox.js: each idea's form changes its
// state through intake's API with the session cookie, then waits until the read side shows the new state. The
// merge forms of the suggested duplicates work without this script too (a form post to /ideas/<id>/merge, which
// intake answers by sending the officer back); with it they merge through the same API, without leaving the page.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("inbox-config").textContent);
  // Intake's API on this same site (behind the proxy), with the session cookie (nothing to paste). A split
  // deployment (intake_url set) sends the cookie along to intake's origin.
  var credentials = config.intake ? "include" : "same-origin";

  function setOptions(select, state) {
    while (select.firstChild) { select.removeChild(select.firstChild); }
    (config.transitions[state] || []).forEach(function (next) {
      var option = document.createElement("option");
      option.value = next;
      option.textContent = config.states[next] || next;
      select.appendChild(option);
    });
  }

  function describe(body, status) {
    if (body && typeof body.detail === "string") { return body.detail; }
    if (body && body.detail) { return JSON.stringify(body.detail); }
    return "HTTP " + status;
  }

  async function waitForState(ideaId, wanted) {
    for (var i = 0; i < 60; i++) {
      var answer = await fetch("/api/v1/ideas/" + encodeURIComponent(ideaId), {credentials: "same-origin", headers: {"accept": "application/json"}});
      if (answer.ok) {
        var idea = await answer.json();
        if (idea.state === wanted) { return true; }
      }
      await new Promise(function (resolve) { setTimeout(resolve, 500); });
    }
    return false;
  }

  async function changeState(ideaId, payload) {
    var response = await fetch(config.intake + "/api/v1/ideas/" + encodeURIComponent(ideaId) + "/status", {
      method: "POST",
      credentials: credentials,
      headers: {"content-type": "application/json", "accept": "application/json"},
      body: JSON.stringify(payload)
    });
    var body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return {response: response, body: body};
  }

  function showState(ideaId, state) {
    var badge = document.querySelector("#idea-" + ideaId + " > td > .state");
    if (badge) {
      badge.dataset.state = state;
      badge.textContent = config.states[state] || state;
    }
  }

  document.querySelectorAll("form.merge").forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var result = form.querySelector(".result");
      var ideaId = form.dataset.ideaId;
      var button = form.querySelector("button");
      button.disabled = true;
      result.textContent = config.texts.sent;
      try {
        var answer = await changeState(ideaId, {
          to_state: "merged",
          reason: form.elements.reason.value.trim() || null,
          merged_into: form.elements.merged_into.value
        });
        if (answer.response.status === 401) {
          result.textContent = config.texts.signed_out;
          return;
        }
        if (!answer.response.ok) {
          result.textContent = config.texts.failed + " (" + answer.response.status + "): " + describe(answer.body, answer.response.status);
          return;
        }
        if (await waitForState(ideaId, "merged")) {
          showState(ideaId, "merged");
          document.querySelectorAll("#idea-" + ideaId + " form.merge button, #idea-" + ideaId + " form.action button").forEach(function (other) { other.disabled = true; });
          result.textContent = config.texts.merged;
          return;
        }
        result.textContent = config.texts.not_visible_yet;
      } catch (error) {
        result.textContent = config.texts.failed + ": " + error;
      } finally {
        if (result.textContent !== config.texts.merged) { button.disabled = false; }
      }
    });
  });

  document.querySelectorAll("form.action").forEach(function (form) {
    form.hidden = false;
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var result = form.querySelector(".result");
      var ideaId = form.dataset.ideaId;
      var toState = form.elements.to_state.value;
      var payload = {
        to_state: toState,
        reason: form.elements.reason.value.trim() || null,
        merged_into: form.elements.merged_into.value.trim() || null
      };
      var button = form.querySelector("button");
      button.disabled = true;
      result.textContent = config.texts.sent;
      try {
        var answer = await changeState(ideaId, payload);
        if (answer.response.status === 401) {
          result.textContent = config.texts.signed_out;
          return;
        }
        if (!answer.response.ok) {
          result.textContent = config.texts.failed + " (" + answer.response.status + "): " + describe(answer.body, answer.response.status);
          return;
        }
        if (await waitForState(ideaId, toState)) {
          showState(ideaId, toState);
          setOptions(form.elements.to_state, toState);
          form.elements.reason.value = "";
          form.elements.merged_into.value = "";
          result.textContent = config.texts.done + " " + (config.states[toState] || toState) + ".";
        } else {
          result.textContent = config.texts.not_visible_yet;
        }
      } catch (error) {
        result.textContent = config.texts.failed + ": " + error;
      } finally {
        button.disabled = false;
      }
    });
  });
})();
