// Database Management: forms marked data-job run as a job the page follows (progress in the
// role="status" region); without this script the same forms work as plain posts.
"use strict";

// Bring the region up to date line by line: an unchanged line keeps its node, so a screen
// reader announces only the lines that are new or changed (never the whole list each poll).
function showStatus(region, lines, state) {
  region.hidden = false;
  const wanted = "status" + (state ? " " + state : "");
  if (region.className !== wanted) {
    region.className = wanted;
  }
  const current = Array.from(region.children);
  lines.forEach((text, i) => {
    if (i >= current.length) {
      const p = document.createElement("p");
      p.textContent = text;
      region.append(p);
    } else if (current[i].textContent !== text) {
      current[i].textContent = text;
    }
  });
  current.slice(lines.length).forEach((extra) => extra.remove());
}

// Move focus to an element that is not a control (a result line, a refusal): it becomes
// focusable from script only.
function focusOn(element) {
  if (!element) {
    return;
  }
  if (!element.hasAttribute("tabindex")) {
    element.setAttribute("tabindex", "-1");
  }
  element.focus();
}

function focusResult(region) {
  focusOn(region.lastElementChild || region);
}

async function follow(jobUrl, region) {
  for (;;) {
    const response = await fetch(jobUrl, { headers: { Accept: "application/json" } });
    const job = await response.json();
    if (!response.ok) {
      showStatus(region, [job.error || "The job could not be followed."], "failed");
      return null;
    }
    const steps = job.phases.length ? job.phases : [job.current];
    if (job.state === "running") {
      showStatus(region, steps, "running");
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    // The steps stay; the outcome is one more line (the only one announced).
    if (job.state === "failed") {
      showStatus(region, job.phases.concat([job.error]), "failed");
      return null;
    }
    showStatus(region, job.phases.concat([job.message]), "ok");
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

// After a restore ran, its form and Cancel go: there is nothing left to confirm or cancel.
function finishRestore(form, region) {
  const section = form.closest("section");
  section.querySelectorAll("form").forEach((f) => f.remove());
  const back = document.createElement("a");
  back.href = form.dataset.back;
  back.textContent = "Back to Database Management";
  const line = document.createElement("p");
  line.append(back);
  region.after(line);
}

async function submitJob(event) {
  const form = event.target;
  const section = form.closest("section");
  const region = section.querySelector("[role=status]");
  const button = form.querySelector("button[type=submit]");
  if (!region || !window.fetch) {
    return; // a plain post
  }
  event.preventDefault();
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  const others = Array.from(section.querySelectorAll("button")).filter((b) => !b.disabled);
  others.forEach((b) => { b.disabled = true; });
  showStatus(region, ["Starting…"], "running");
  let restored = false;
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
      const field = answer.field && form.elements.namedItem(answer.field);
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.focus();
        field.select();
      } else {
        focusResult(region);
      }
      return;
    }
    const job = await follow(answer.job, region);
    if (job && job.review_url) {
      window.location.assign(job.review_url);
      return;
    }
    if (job && job.download_url) {
      window.location.assign(job.download_url);
      await refreshList();
    }
    if (job && form.dataset.job === "restore") {
      restored = true;
      finishRestore(form, region);
    }
    focusResult(region);
  } catch (error) {
    showStatus(region, ["The connection to the server was lost; reload the page to see the outcome."], "failed");
    focusResult(region);
  } finally {
    if (!restored) {
      others.forEach((b) => { b.disabled = false; });
    }
  }
}

// Delegated, so the forms of a refreshed backups list are followed too.
document.addEventListener("submit", (event) => {
  if (event.target instanceof HTMLFormElement && event.target.matches("form[data-job]")) {
    submitJob(event);
  }
});

// A page that opens on an outcome (an error, a refusal, a finished restore) puts focus on it.
document.addEventListener("DOMContentLoaded", () => {
  focusOn(document.querySelector("[data-focus]"));
});
