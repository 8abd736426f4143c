// Small helpers over Chart.js for the analytics pages (data comes from json_script tags).
function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}
function datasets(series, fill) {
  return series.map(([label, data, color]) => ({
    label, data, borderColor: color, backgroundColor: fill ? color : color + "33", tension: 0.25,
  }));
}
function lineChart(id, labels, series) {
  const el = document.getElementById(id);
  if (!el || typeof Chart === "undefined") return null;
  return new Chart(el, {
    type: "line",
    data: { labels, datasets: datasets(series, false) },
    options: { responsive: true, interaction: { mode: "index", intersect: false },
               scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}
function barChart(id, labels, series) {
  const el = document.getElementById(id);
  if (!el || typeof Chart === "undefined") return null;
  return new Chart(el, {
    type: "bar",
    data: { labels, datasets: datasets(series, true) },
    options: { responsive: true, scales: { y: { beginAtZero: true } } },
  });
}
