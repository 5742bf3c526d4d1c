// The filter of the "users who need attention" table. Inlined verbatim by
// csvimport.report, which puts this file's sha256 into the page's Content-Security-Policy:
// any edit is picked up at render time. Without JavaScript the controls stay hidden and
// the table stays whole. It reads text and sets `hidden`: no markup is ever built from data.
"use strict";
(() => {
  const controls = document.getElementById("filter");
  const table = document.getElementById("attention-table");
  if (!controls || !table) {
    return;
  }
  const text = document.getElementById("filter-text");
  const outcome = document.getElementById("filter-outcome");
  const count = document.getElementById("filter-count");
  const rows = Array.from(table.tBodies[0].rows);
  const haystacks = rows.map((row) => row.textContent.toLowerCase());

  const apply = () => {
    const query = text.value.trim().toLowerCase();
    const wanted = outcome.value;
    let shown = 0;
    rows.forEach((row, i) => {
      const visible =
        (wanted === "" || row.dataset.outcome === wanted) &&
        (query === "" || haystacks[i].includes(query));
      row.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    count.textContent = `${shown.toLocaleString("en-US")} of ${rows.length.toLocaleString("en-US")} shown`;
  };

  text.addEventListener("input", apply);
  outcome.addEventListener("change", apply);
  controls.hidden = false;
  apply();
})();
