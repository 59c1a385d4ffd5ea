// Database Management: forms marked data-job run as a job the page follows (progress in the
// role="status" region); without this script the same forms work as plain posts.
"use strict";

function showStatus(region, lines, state) {
  region.hidden = false;
  region.className = "status" + (state ? " " + state : "");
  region.replaceChildren(...lines.map((text) => {
    const p = document.createElement("p");
    p.textContent = text;
    return p;
  }));
}

async function follow(jobUrl, region, button) {
  for (;;) {
    const response = await fetch(jobUrl, { headers: { Accept: "application/json" } });
    const job = await response.json();
    if (!response.ok) {
      showStatus(region, [job.error || "The job could not be followed."], "failed");
      return null;
    }
    if (job.state === "running") {
      showStatus(region, job.phases.length ? job.phases : [job.current], "running");
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (job.state === "failed") {
      showStatus(region, [job.error], "failed");
      return null;
    }
    showStatus(region, [job.message], "ok");
    return job;
  }
}

// The backups list as the server now has it (the new backup included), without a reload
// that would clear the status line.
async function refreshList() {
  const list = document.getElementById("backups-list");
  if (!list) {
    return;
  }
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) {
    return;
  }
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("backups-list");
  if (fresh) {
    list.replaceWith(document.importNode(fresh, true));
  }
}

async function submitJob(event) {
  const form = event.target;
  const region = form.closest("section").querySelector("[role=status]");
  const button = form.querySelector("button[type=submit]");
  if (!region || !window.fetch) {
    return; // a plain post
  }
  event.preventDefault();
  button.disabled = true;
  showStatus(region, ["Starting…"], "running");
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (response.status !== 202) {
      showStatus(region, [answer.error || "The server refused the request."], "failed");
      return;
    }
    const job = await follow(answer.job, region, button);
    if (job && job.review_url) {
      window.location.assign(job.review_url);
      return;
    }
    if (job && job.download_url) {
      window.location.assign(job.download_url);
      await refreshList();
    }
    if (job && form.dataset.job === "restore") {
      form.remove();
      const back = document.createElement("a");
      back.href = form.dataset.back;
      back.textContent = "Back to Database Management";
      region.after(back);
    }
  } catch (error) {
    showStatus(region, ["The connection to the server was lost; reload the page to see the outcome."], "failed");
  } finally {
    button.disabled = false;
  }
}

// Delegated, so the forms of a refreshed backups list are followed too.
document.addEventListener("submit", (event) => {
  if (event.target instanceof HTMLFormElement && event.target.matches("form[data-job]")) {
    submitJob(event);
  }
});
