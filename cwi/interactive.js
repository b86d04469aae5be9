// The book's interactive views, with no kernel and nothing to download: each
// output of cwi.interactive carries this file and its data, so it runs from
// _build/html opened as files, and in JupyterLab.  Plain DOM and SVG, no library.
window.cwiInteractive = window.cwiInteractive || (function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attributes, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fill(select, options, keep) {
    const previous = keep ? select.value : null;
    select.replaceChildren(...options.map(([value, label]) => el("option", {value: value}, label)));
    if (previous !== null && options.some(([value]) => String(value) === previous)) select.value = previous;
  }

  function fixed(x, digits) { return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits); }

  // Digits that tell apart ticks a quarter of `span` apart.
  function tickDigits(span) { return Math.max(0, Math.min(4, 1 - Math.floor(Math.log10(span / 4 || 1)))); }

  // ---- Sentence explorer: coloured words and grouped bars of two models ----

  function colour(data, w) {
    const step = Math.min(data.palette.length - 1, Math.max(0, Math.round(w / data.vmax * (data.palette.length - 1))));
    return data.palette[step];
  }

  function wordRow(data, label, words, weights) {
    const row = el("div", {class: "cwi-words"});
    row.append(el("span", {class: "cwi-label"}, label));
    const text = el("span", {class: "cwi-sentence"});
    if (!weights) {
      text.append(el("em", {}, "not attributed for this model and method"));
    } else {
      words.forEach((word, i) => {
        if (i) text.append(" ");
        const w = weights[i];
        const box = el("span", {class: "cwi-word", title: w === null ? "no weight" : fixed(w, 2)}, word);
        if (w !== null) {
          box.style.background = colour(data, w);
          box.style.color = w / data.vmax > data.whiteAbove ? "white" : "black";
        }
        text.append(box);
      });
    }
    row.append(text);
    return row;
  }

  function bars(data, words, series) {
    const slot = 18 * Math.max(1, series.length) + 12, left = 40, top = 22, plot = 170, bottom = 90;
    const width = left + slot * words.length + 10;
    const high = Math.max(2, ...series.flatMap(([, , ws]) => ws.filter((w) => w !== null)));
    const y = (v) => top + plot * (1 - v / high);
    const svg = el("svg:svg", {width: width, height: top + plot + bottom, class: "cwi-bars", role: "img"});
    const step = Math.max(1, Math.ceil(high / 5));
    for (let tick = 0; tick <= high; tick += step) {
      svg.append(el("svg:line", {x1: left, x2: width - 10, y1: y(tick), y2: y(tick), stroke: "#e5e5e5"}));
      svg.append(el("svg:text", {x: left - 6, y: y(tick) + 4, "text-anchor": "end", "font-size": 11}, tick));
    }
    svg.append(el("svg:line", {x1: left, x2: width - 10, y1: y(1), y2: y(1), stroke: "grey", "stroke-dasharray": "4 3"}));
    svg.append(el("svg:text", {x: 4, y: 13, "font-size": 11}, "normalised weight (dashed: the sentence mean, 1)"));
    words.forEach((word, i) => {
      const x0 = left + slot * i + 6;
      series.forEach(([name, fillColour, ws], k) => {
        const w = ws[i];
        if (w === null) return;
        const bar = el("svg:rect", {x: x0 + 18 * k, y: y(w), width: 16, height: Math.max(0, y(0) - y(w)), fill: fillColour});
        bar.append(el("svg:title", {}, `${word} | ${name}: ${fixed(w, 2)}`));
        svg.append(bar);
      });
      const cx = x0 + 9 * series.length, cy = top + plot + 8;
      svg.append(el("svg:text", {x: cx, y: cy, "font-size": 11, "text-anchor": "end",
                                 transform: `rotate(-55 ${cx} ${cy})`}, word));
    });
    return svg;
  }

  function ready(root) { root.querySelectorAll(".cwi-inactive").forEach((note) => note.remove()); }

  function explorer(root, data) {
    ready(root);
    const controls = {};
    for (const role of ["dataset", "method", "first", "second", "sentence"]) {
      controls[role] = root.querySelector(`select[data-role=${role}]`);
    }
    fill(controls.dataset, data.datasets.map((d, i) => [i, d]));
    fill(controls.method, data.methods.map((m) => [m, m.toUpperCase()]));
    fill(controls.first, data.models.map((m) => [m, m]));
    fill(controls.second, data.models.map((m) => [m, m]));
    controls.first.value = data.first;
    controls.second.value = data.second;
    const has = (s, model) => data.methods.some((m) => s.v[`${model}|${m}`]);

    function sentences() {
      const d = Number(controls.dataset.value), chosen = [controls.first.value, controls.second.value];
      const options = [];
      data.sentences.forEach((s, i) => {
        if (s.d === d && chosen.some((model) => has(s, model))) options.push([i, s.t]);
      });
      fill(controls.sentence, options, true);
    }

    function draw() {
      const chosen = controls.sentence.value;
      const s = chosen === "" ? undefined : data.sentences[Number(chosen)];
      const words = root.querySelector("[data-role=words]"), chart = root.querySelector("[data-role=bars]");
      if (!s) {
        words.replaceChildren(el("em", {}, "no sentence of this dataset is attributed for these models"));
        chart.replaceChildren();
        return;
      }
      const method = controls.method.value;
      const names = [...new Set([controls.first.value, controls.second.value])];
      const series = names.map((name, k) => [name, data.colours[k], s.v[`${name}|${method}`]]);
      words.replaceChildren(...series.map(([name, , ws]) => wordRow(data, name, s.w, ws)));
      const drawn = series.filter(([, , ws]) => ws);
      chart.replaceChildren(...(drawn.length ? [bars(data, s.w, drawn)] : []));
      root.dataset.shown = `${s.t} | ${method} | ${names.join(" | ")}`;
    }

    controls.dataset.addEventListener("change", () => { sentences(); draw(); });
    controls.first.addEventListener("change", () => { sentences(); draw(); });
    controls.second.addEventListener("change", () => { sentences(); draw(); });
    controls.method.addEventListener("change", draw);
    controls.sentence.addEventListener("change", draw);
    sentences();
    draw();
  }

  // ---- Scatter of word weight against a word statistic, with hover ----

  function scatter(root, data) {
    ready(root);
    const pairSelect = root.querySelector("select[data-role=pair]");
    const quantitySelect = root.querySelector("select[data-role=quantity]");
    const holder = root.querySelector("[data-role=plot]"), tip = root.querySelector("[data-role=tip]");
    fill(pairSelect, data.pairs.map((p, i) => [i, p.name]));
    fill(quantitySelect, Object.entries(data.quantities));
    const width = 620, height = 390, left = 50, right = 12, top = 40, bottom = 42;

    function range(values) {
      const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
      const low = at(0.005), high = at(0.995), pad = 0.04 * (high - low || 1);
      return [low - pad, high + pad];
    }

    function draw() {
      const pair = data.pairs[Number(pairSelect.value)], q = quantitySelect.value, xs = pair.x[q];
      const [x0, x1] = range(xs.slice()), [y0, y1] = range(pair.models.flatMap((m) => m.y));
      const px = (v) => left + (width - left - right) * (Math.min(Math.max(v, x0), x1) - x0) / (x1 - x0);
      const line = (v) => top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0));
      const py = (v) => line(Math.min(Math.max(v, y0), y1));
      const svg = el("svg:svg", {width: width, height: height, class: "cwi-scatter-plot", role: "img"});
      const clip = el("svg:clipPath", {id: `${root.id}-clip`});
      clip.append(el("svg:rect", {x: left, y: top, width: width - left - right, height: height - top - bottom}));
      svg.append(clip);
      for (let k = 0; k <= 4; k++) {
        const xv = x0 + (x1 - x0) * k / 4, yv = y0 + (y1 - y0) * k / 4;
        svg.append(el("svg:text", {x: px(xv), y: height - bottom + 16, "text-anchor": "middle", "font-size": 11},
                      fixed(xv, tickDigits(x1 - x0))));
        svg.append(el("svg:text", {x: left - 6, y: py(yv) + 4, "text-anchor": "end", "font-size": 11},
                      fixed(yv, tickDigits(y1 - y0))));
        svg.append(el("svg:line", {x1: left, x2: width - right, y1: py(yv), y2: py(yv), stroke: "#eeeeee"}));
      }
      svg.append(el("svg:text", {x: (left + width) / 2, y: height - 6, "text-anchor": "middle", "font-size": 12},
                    data.quantities[q]));
      svg.append(el("svg:text", {x: 12, y: top - 10, "font-size": 12}, "normalised weight"));
      pair.models.forEach((model, k) => {
        svg.append(el("svg:text", {x: width - right - 4, y: top - 10 - 14 * (pair.models.length - 1 - k),
                                   "text-anchor": "end", "font-size": 12, fill: model.colour}, `● ${model.name} (${model.role})`));
      });
      pair.models.forEach((model) => {
        model.y.forEach((yv, i) => {
          if (yv === null || xs[i] === null) return;
          // Beyond the axis range (0.5% at each end) a dot sits on the edge, drawn hollow.
          const outside = xs[i] < x0 || xs[i] > x1 || yv < y0 || yv > y1;
          const dot = el("svg:circle", {cx: px(xs[i]), cy: py(yv), r: 3, "data-word": pair.words[i],
                                        fill: outside ? "none" : model.colour, "fill-opacity": 0.45,
                                        stroke: outside ? model.colour : "none"});
          const other = pair.models.filter((m) => m !== model)
            .map((m) => `${m.name}: ${fixed(m.y[i], 2)}`).join("; ");
          const text = `${pair.words[i]}  (${model.name}, ${model.role})\n${data.quantities[q]}: ${fixed(xs[i], 3)}` +
            `\nnormalised weight: ${fixed(yv, 2)}` + (other ? `\nits twin, ${other}` : "");
          dot.append(el("svg:title", {}, text));
          dot.addEventListener("mouseenter", () => { tip.textContent = text; });
          svg.append(dot);
        });
        if (!model.fit[q]) return;
        const [slope, intercept] = model.fit[q];  // least squares on every word, not just the dots drawn
        svg.append(el("svg:line", {x1: px(x0), y1: line(intercept + slope * x0), x2: px(x1), y2: line(intercept + slope * x1),
                                   stroke: model.colour, "stroke-width": 2, "clip-path": `url(#${root.id}-clip)`}));
      });
      holder.replaceChildren(svg);
      tip.textContent = "Hover a dot: the word, its value and its weights.";
    }

    pairSelect.addEventListener("change", draw);
    quantitySelect.addEventListener("change", draw);
    draw();
  }

  // ---- Pair explorer: the cosine of two sentences split into word pairs ----

  function diverging(data, value, top) {
    const n = data.palette.length - 1, x = top > 0 ? Math.max(-1, Math.min(1, value / top)) : 0;
    return data.palette[Math.round((x + 1) / 2 * n)];
  }

  function contributionRow(data, label, words, values, top, score) {
    const row = el("div", {class: "cwi-words"});
    row.append(el("span", {class: "cwi-label"}, label));
    const text = el("span", {class: "cwi-sentence"});
    words.forEach((word, i) => {
      if (i) text.append(" ");
      const v = values[i];
      const share = score ? ` (${(100 * v / score).toFixed(1)}% of the cosine)` : "";
      const box = el("span", {class: "cwi-word", title: `${word}: ${v >= 0 ? "+" : ""}${fixed(v, 4)}${share}`}, word);
      box.style.background = diverging(data, v, top);
      box.style.color = top && Math.abs(v / top) > 0.6 ? "white" : "black";
      text.append(box);
    });
    row.append(text);
    return row;
  }

  function heatmap(data, entry, values, top) {
    const cell = 18, left = 8 + 7 * Math.max(...entry.wa.map((w) => Math.min(w.length, 14))), head = 8 + 6 * Math.max(...entry.wb.map((w) => Math.min(w.length, 14)));
    const width = left + cell * entry.wb.length + 6, height = head + cell * entry.wa.length + 6;
    const svg = el("svg:svg", {width: width, height: height, class: "cwi-heatmap", role: "img"});
    const short = (w) => (w.length > 14 ? w.slice(0, 13) + "…" : w);
    entry.wa.forEach((w, i) => svg.append(el("svg:text", {x: left - 4, y: head + cell * i + 13, "text-anchor": "end", "font-size": 11}, short(w))));
    entry.wb.forEach((w, j) => {
      const x = left + cell * j + 12, y = head - 4;
      svg.append(el("svg:text", {x: x, y: y, "font-size": 11, transform: `rotate(-60 ${x} ${y})`}, short(w)));
    });
    values.A.forEach((line, i) => line.forEach((v, j) => {
      const rect = el("svg:rect", {x: left + cell * j, y: head + cell * i, width: cell - 1, height: cell - 1, fill: diverging(data, v, top)});
      rect.append(el("svg:title", {}, `${entry.wa[i]} ~ ${entry.wb[j]}: ${v >= 0 ? "+" : ""}${fixed(v, 4)}`));
      svg.append(rect);
    }));
    entry.match.forEach(([i, j]) => svg.append(el("svg:rect", {x: left + cell * j, y: head + cell * i, width: cell - 1, height: cell - 1,
                                                               fill: "none", stroke: "black", "stroke-width": 1.5})));
    return svg;
  }

  function similarity(root, data) {
    ready(root);
    const controls = {};
    for (const role of ["dataset", "first", "second", "pair"]) controls[role] = root.querySelector(`select[data-role=${role}]`);
    fill(controls.dataset, data.datasets.map((d, i) => [i, d]));
    fill(controls.first, data.models.map((m) => [m, m]));
    fill(controls.second, data.models.map((m) => [m, m]));
    controls.first.value = data.first;
    controls.second.value = data.second;

    function pairs() {
      const d = Number(controls.dataset.value), options = [];
      data.pairs.forEach((p, i) => { if (p.d === d) options.push([i, `${p.a}  |  ${p.b}`]); });
      fill(controls.pair, options, true);
    }

    function draw() {
      const entry = data.pairs[Number(controls.pair.value)], panels = root.querySelector("[data-role=panels]");
      const names = [...new Set([controls.first.value, controls.second.value])].filter((m) => entry.m[m]);
      // One scale for both panels (cells, and words on their own), so that colours compare across models.
      const cells = Math.max(1e-9, ...names.flatMap((m) => entry.m[m].A.flat().map(Math.abs)));
      const sums = Math.max(1e-9, ...names.flatMap((m) => entry.m[m].ra.concat(entry.m[m].rb).map(Math.abs)));
      root.querySelector("[data-role=gold]").textContent =
        entry.gold === null ? "no gold score (a typed pair)" : `gold similarity ${entry.gold.toFixed(2)} (0-5 scale)`;
      panels.replaceChildren(...names.map((m, k) => {
        const v = entry.m[m], panel = el("div", {class: "cwi-panel"});
        const own = v.wa ? {...entry, wa: v.wa, wb: v.wb, match: v.match} : entry;  // cut to this model's length
        panel.append(el("div", {class: "cwi-panel-title", style: `color:${data.colours[k]}`}, `${m}: cosine ${fixed(v.score, 3)}`));
        panel.append(el("div", {class: "cwi-terms"},
          `= word pairs ${fixed(v.pairs, 3)} + words against the other's baseline ${fixed(v.words, 3)} + baselines ${fixed(v.base, 3)}` +
          ` (decomposition error ${v.error})`));
        panel.append(contributionRow(data, "sentence 1", own.wa, v.ra, sums, v.score));
        panel.append(contributionRow(data, "sentence 2", own.wb, v.rb, sums, v.score));
        const holder = el("div", {class: "cwi-scroll"});
        holder.append(heatmap(data, own, v, cells));
        panel.append(holder);
        return panel;
      }));
      if (!names.length) panels.replaceChildren(el("em", {}, "no decomposition of this pair for these models"));
      root.dataset.shown = `${entry.a} | ${entry.b} | ${names.join(" | ")}`;
    }

    controls.dataset.addEventListener("change", () => { pairs(); draw(); });
    for (const role of ["first", "second", "pair"]) controls[role].addEventListener("change", draw);
    pairs();
    draw();
  }

  return {explorer: explorer, scatter: scatter, similarity: similarity};
})();
