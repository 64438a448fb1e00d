// Small conveniences on top of pages that work without JavaScript: "select all" in listings,
// and the dashboard's figures refreshed from /stats every few seconds.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("input.select-all")) {
    box.addEventListener("change", () => {
      const form = box.closest("form");
      for (const item of form.querySelectorAll("input[type=checkbox][name]")) {
        item.checked = box.checked;
      }
    });
  }
  const figures = document.querySelectorAll("[data-stat]");
  if (figures.length === 0) {
    return;
  }
  const refresh = async () => {
    try {
      const response = await fetch("/stats", { credentials: "same-origin" });
      if (!response.ok) {
        return;
      }
      const stats = await response.json();
      for (const figure of figures) {
        const value = stats[figure.dataset.stat];
        if (value !== undefined) {
          figure.textContent = String(value);
        }
      }
    } catch (error) {
      // The next round tries again; a page left open must not pile up errors.
    }
  };
  setInterval(refresh, 5000);
});
