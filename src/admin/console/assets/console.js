// govgate console: the little the pages do in the browser. The review
// queue reloads when the queue changes (polled every 2 s); a review page
// takes keys for a reviewer working through a queue.
"use strict";

function pollQueue() {
  const state = document.getElementById("queue-state");
  if (!state) return;
  const seen = state.dataset.fingerprint;
  const url = "/console/reviews/state" + window.location.search;
  window.setInterval(async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin" });
      if (!answer.ok) return;
      const now = await answer.json();
      if (now.fingerprint !== seen) window.location.reload();
    } catch (_) {
      // The next poll tries again.
    }
  }, 2000);
}

function reviewKeys() {
  if (!document.getElementById("form-approve")) return;
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "a") {
      event.preventDefault();
      document.getElementById("form-approve").requestSubmit();
    } else if (event.key === "r") {
      event.preventDefault();
      document.getElementById("reason-reject").focus();
    } else if (event.key === "n") {
      event.preventDefault();
      window.location.assign("/console/reviews");
    }
  });
}

pollQueue();
reviewKeys();
