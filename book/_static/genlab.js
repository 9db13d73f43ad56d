/* genlab book: keep mermaid diagrams legible (added by book/_ext/offline_assets.py).

   sphinxcontrib-mermaid stretches every diagram to the column width: a wide left-to-right
   diagram then shrinks until its labels are 4-7 px. Here each diagram is drawn at its natural
   size when it fits, and otherwise scaled down no further than MIN_SCALE, its box scrolling
   sideways (the full-screen button still shows the whole diagram). */
(function () {
  "use strict";
  var MIN_SCALE = 0.65;  // 18 px labels (mermaid_init_config) stay at least ~12 px

  function fit(svg) {
    var box = svg.closest("pre.mermaid");
    var view = svg.viewBox && svg.viewBox.baseVal;
    if (!box || !view || !view.width) return;
    var style = getComputedStyle(box);
    var room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var width = view.width <= room ? view.width : Math.max(room, view.width * MIN_SCALE);
    svg.style.setProperty("width", Math.floor(width) + "px", "important");
    svg.style.setProperty("max-width", "none", "important");
    svg.style.setProperty("height", "auto", "important");
  }

  function fitAll() {
    document.querySelectorAll(".bd-article pre.mermaid > svg").forEach(fit);
  }

  // Refit on the next frame, and once more when the layout has settled: a resize event can
  // arrive while the column still has an intermediate width (seen when a window is narrowed
  // and widened again), which left diagrams at their natural width, cut by their box.
  var pending = null, settle = null;
  function later() {
    if (pending) cancelAnimationFrame(pending);
    pending = requestAnimationFrame(function () { pending = null; fitAll(); });
    clearTimeout(settle);
    settle = setTimeout(fitAll, 200);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var diagrams = document.querySelectorAll(".bd-article pre.mermaid");
    if (!diagrams.length) return;
    var observer = new MutationObserver(later);
    // the column itself changing width (window, sidebars, fonts) also calls for a refit
    var resized = window.ResizeObserver ? new ResizeObserver(later) : null;
    diagrams.forEach(function (d) {
      observer.observe(d, {childList: true});
      if (resized) resized.observe(d.parentElement);
    });
    window.addEventListener("resize", later);
    later();
  });
})();
