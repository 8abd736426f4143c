// The list-growth and engagement charts (dashboard home), drawn with analytics/charts.js from
// the growth-data and engagement-data json_script tags.
(function () {
  const growth = readJson("growth-data");
  if (growth) {
    lineChart("growth-chart", growth.labels, [
      ["Subscribes", growth.subscribes, "#198754"],
      ["Unsubscribes", growth.unsubscribes, "#dc3545"],
    ]);
  }
  const engagement = readJson("engagement-data");
  if (engagement) {
    lineChart("engagement-chart", engagement.labels, [
      ["Human opens", engagement.opens, "#0d6efd"],
      ["Human clicks", engagement.clicks, "#fd7e14"],
    ]);
  }
})();
