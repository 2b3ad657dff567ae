/* The slide viewer's own script: loads OpenSeadragon (pinned, see ui/viewer/settings.py), opens the slide's
 * Deep Zoom tiles from the app's viewer routes and adds what OpenSeadragon does not have: toggleable
 * overlays (tissue contours, kept tiles, heatmap) drawn on a canvas over the slide, a scale bar in
 * micrometres, the current magnification and "copy link to this view". Pan and zoom are OpenSeadragon's.
 *
 *   WsiViewer.mount(hostElement, config)          config: ui.viewer.component.viewer_config (JSON)
 *   WsiViewer.bindGradio(element, props, watch)   inside gr.HTML's js_on_load: remounts when the value changes
 *
 * When OpenSeadragon cannot load (an offline browser and no local copy) or the slide cannot open, the host
 * shows the slide's overview picture and says why. State for tests: host.dataset.state (empty | loading |
 * ready | fallback) and host.wsiv (this viewer's object: .viewer is the OpenSeadragon Viewer).
 */
(function () {
  "use strict";
  if (window.WsiViewer) { return; }

  var STYLE = window.WSIV_STYLE || "";                // ui/viewer/viewer.css, prepended by the server
  var OVERLAYS = [["tissue", "Tissue contours"], ["grid", "Kept tiles"], ["heatmap", "Heatmap"]];
  var osdLoads = {};

  function injectStyle() {
    if (document.getElementById("wsiv-style")) { return; }
    var style = document.createElement("style");
    style.id = "wsiv-style";
    style.textContent = STYLE;
    document.head.appendChild(style);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }

  function appRoot(config) {
    if (config.root) { return new URL(config.root, location.href).href; }
    var root = (window.gradio_config && window.gradio_config.root) || (location.origin + location.pathname);
    return root.replace(/\/?$/, "/");
  }

  function loadOsd(script, root) {
    if (window.OpenSeadragon) { return Promise.resolve(window.OpenSeadragon); }
    var src = new URL(script.src, root).href;
    if (!osdLoads[src]) {
      osdLoads[src] = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = src;
        if (script.integrity) { tag.integrity = script.integrity; tag.crossOrigin = "anonymous"; }
        tag.onload = function () {
          if (window.OpenSeadragon) { resolve(window.OpenSeadragon); } else { reject(new Error(src + " defines no OpenSeadragon")); }
        };
        tag.onerror = function () { delete osdLoads[src]; reject(new Error("could not load " + src)); };
        document.head.appendChild(tag);
      });
    }
    return osdLoads[src];
  }

  function niceLength(maxUm) {
    var exp = Math.pow(10, Math.floor(Math.log10(maxUm)));
    var best = exp;
    [1, 2, 5, 10].forEach(function (m) { if (m * exp <= maxUm) { best = m * exp; } });
    return best;
  }

  function formatUm(um) {
    if (um >= 1000) { return (um / 1000) + " mm"; }
    if (um >= 1) { return um + " \u00b5m"; }
    return um.toPrecision(1) + " \u00b5m";
  }

  function heatColor(t) {                      // t in [0, 1]: blue (low) to red (high)
    var hue = 240 * (1 - Math.max(0, Math.min(1, t)));
    return "hsla(" + hue.toFixed(0) + ",90%,50%,0.45)";
  }

  function divergingColor(t) {                 // t in [-1, 1]: blue (against) .. transparent (0) .. red (for)
    var v = Math.max(-1, Math.min(1, t)), rgb = v >= 0 ? "178,24,43" : "33,102,172";
    return "rgba(" + rgb + "," + (0.08 + 0.62 * Math.abs(v)).toFixed(3) + ")";
  }

  function parseHash(hash) {
    var out = {};
    (hash || "").replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv.length === 2 && isFinite(parseFloat(kv[1]))) { out[kv[0]] = parseFloat(kv[1]); }
    });
    return (out.x !== undefined && out.y !== undefined && out.ds > 0) ? out : null;
  }

  function View(host, config) {
    this.host = host;
    this.config = config;
    this.overlayData = {};
    this.shown = {};
    this.tilesLoaded = 0;
    this.tilesFailed = 0;
    host.wsiv = this;
    this.build();
  }

  View.prototype.build = function () {
    var self = this, config = this.config;
    injectStyle();
    this.host.innerHTML = "";
    var root = el("div", {"class": "wsiv"});
    if (config.height_px) { root.style.setProperty("--wsiv-height", config.height_px + "px"); }
    this.host.appendChild(root);
    this.message = el("div", {"class": "wsiv-message", role: "status"});
    if (!config.handle) {
      this.host.dataset.state = "empty";
      this.message.textContent = config.note || "No slide open.";
      root.appendChild(this.message);
      return;
    }
    this.root = appRoot(config);
    this.base = new URL(config.base, this.root).href;
    var bar = el("div", {"class": "wsiv-bar"});
    [["zoom-in", "+", "Zoom in"], ["zoom-out", "\u2212", "Zoom out"], ["home", "Whole slide", "Show the whole slide"]]
      .forEach(function (b) {
        var button = el("button", {type: "button", "data-act": b[0], title: b[2]}, b[1]);
        button.addEventListener("click", function () { self.act(b[0]); });
        bar.appendChild(button);
      });
    OVERLAYS.forEach(function (o) {
      var info = (config.overlays || {})[o[0]] || {available: false, note: ""};
      var label = el("label", {});
      var box = el("input", {type: "checkbox", "data-overlay": o[0]});
      box.addEventListener("change", function () { self.toggle(o[0], box.checked); });
      label.appendChild(box);
      label.appendChild(document.createTextNode(o[1]));
      bar.appendChild(label);
    });
    var copy = el("button", {type: "button", "data-act": "copy-link"}, "Copy link to this view");
    copy.addEventListener("click", function () { self.copyLink(); });
    bar.appendChild(copy);
    this.linkBox = el("input", {"class": "wsiv-link", readonly: "", "aria-label": "Link to this view", hidden: ""});
    bar.appendChild(this.linkBox);
    this.bar = bar;
    this.refreshToggles();
    this.stage = el("div", {"class": "wsiv-stage"});
    this.osdBox = el("div", {"class": "wsiv-osd"});
    this.scale = el("div", {"class": "wsiv-scale"});
    this.scaleBar = el("div", {"class": "wsiv-scale-bar"});
    this.scaleLabel = el("span", {});
    this.scale.appendChild(this.scaleBar);
    this.scale.appendChild(this.scaleLabel);
    this.mag = el("div", {"class": "wsiv-mag"});
    this.stage.appendChild(this.osdBox);
    this.stage.appendChild(this.scale);
    this.stage.appendChild(this.mag);
    root.appendChild(bar);
    root.appendChild(this.stage);
    root.appendChild(this.message);
    this.host.dataset.state = "loading";
    loadOsd(config.script, this.root).then(function (OSD) { self.open(OSD); }, function (err) {
      self.fallback("The zoomable viewer could not load OpenSeadragon (" + err.message + "): this browser may be " +
        "offline, or the file did not match its pinned hash. Showing the overview instead; start the app with " +
        "--viewer-js PATH to serve a local copy.");
    });
  };

  View.prototype.open = function (OSD) {
    var self = this;
    this.OSD = OSD;
    var viewer = this.viewer = OSD({
      element: this.osdBox, tileSources: this.base + "slide.dzi", drawer: "canvas", loadTilesWithAjax: true,
      showNavigationControl: false, showNavigator: true, navigatorPosition: "TOP_RIGHT", maxZoomPixelRatio: 2,
      visibilityRatio: 0.5, tileRetryMax: 2, tileRetryDelay: 1500, timeout: 30000, preserveViewport: true,
      gestureSettingsMouse: {clickToZoom: false}, animationTime: 0.6
    });
    this.canvas = el("canvas", {"class": "wsiv-overlay"});
    viewer.canvas.appendChild(this.canvas);
    viewer.addHandler("open", function () {
      self.host.dataset.state = "ready";
      var start = self.config.read_hash ? parseHash(location.hash) : null;
      if (start) { self.goTo(start); }
      self.redraw();
    });
    viewer.addHandler("open-failed", function (event) {
      self.fallback("The slide's tiles could not be opened (" + (event.message || "error") + "). Showing the overview.");
    });
    viewer.addHandler("update-viewport", function () { self.redraw(); });
    viewer.addHandler("resize", function () { self.redraw(); });
    viewer.addHandler("tile-loaded", function (event) {
      self.tilesLoaded += 1;
      var req = event.tileRequest;
      if (req && req.getResponseHeader && req.getResponseHeader("X-Viewer-Tile") === "unreadable") { self.askStatus(); }
    });
    viewer.addHandler("tile-load-failed", function (event) {
      self.tilesFailed += 1;
      var code = event.tileRequest ? event.tileRequest.status : 0;
      if (code === 404) { self.say("This view has expired or was closed (the session ended?): open the slide again."); }
      else if (code === 429) { self.say("Too many tile requests at once; tiles will load as the rate allows."); }
      else { self.say("Some tiles failed to load" + (code ? " (HTTP " + code + ")" : "") + "."); }
    });
  };

  View.prototype.fallback = function (reason) {
    if (this.viewer) { try { this.viewer.destroy(); } catch (e) { /* already gone */ } this.viewer = null; }
    this.host.dataset.state = "fallback";
    if (this.stage) { this.stage.remove(); }
    if (this.bar) { this.bar.remove(); }
    var img = el("img", {"class": "wsiv-fallback", alt: "Overview of " + (this.config.name || "the slide")});
    img.src = this.base + "overview.png";
    this.message.parentNode.insertBefore(img, this.message);
    this.say(reason);
  };

  View.prototype.refreshToggles = function () {
    var overlays = this.config.overlays || {}, shown = this.shown;
    this.bar.querySelectorAll("input[data-overlay]").forEach(function (box) {
      var info = overlays[box.dataset.overlay] || {available: false, note: ""};
      box.disabled = !info.available;
      box.parentNode.className = info.available ? "" : "wsiv-off";
      box.parentNode.title = info.available ? "" : info.note;
      if (!info.available) { box.checked = false; shown[box.dataset.overlay] = false; }
    });
  };

  View.prototype.say = function (text) { this.message.textContent = text; };

  View.prototype.askStatus = function () {
    var self = this;
    if (this.statusTimer) { return; }
    this.statusTimer = setTimeout(function () {
      self.statusTimer = null;
      fetch(self.base + "status.json").then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
        if (s && s.message) { self.say(s.message); }
      }).catch(function () { /* the next tile asks again */ });
    }, 300);
  };

  View.prototype.act = function (what) {
    if (!this.viewer) { return; }
    var vp = this.viewer.viewport;
    if (what === "zoom-in") { vp.zoomBy(2); } else if (what === "zoom-out") { vp.zoomBy(0.5); } else { vp.goHome(); }
    vp.applyConstraints();
  };

  View.prototype.currentView = function () {
    var vp = this.viewer.viewport;
    var centre = vp.viewportToImageCoordinates(vp.getCenter(true));
    return {x: centre.x, y: centre.y, ds: 1 / vp.viewportToImageZoom(vp.getZoom(true))};
  };

  View.prototype.goTo = function (view) {
    var vp = this.viewer.viewport, OSD = this.OSD;
    vp.zoomTo(vp.imageToViewportZoom(1 / view.ds), null, true);
    vp.panTo(vp.imageToViewportCoordinates(new OSD.Point(view.x, view.y)), true);
  };

  View.prototype.viewLink = function () {
    var v = this.currentView();
    return new URL("view", this.base).href + "#x=" + Math.round(v.x) + "&y=" + Math.round(v.y) + "&ds=" +
      v.ds.toPrecision(5);
  };

  View.prototype.copyLink = function () {
    if (!this.viewer) { return; }
    var self = this, link = this.viewLink();
    this.linkBox.hidden = false;
    this.linkBox.value = link;
    this.linkBox.select();
    var done = function () { self.say("Link copied: it reopens this place while this session lasts."); };
    var manual = function () { self.say("Copy the link shown: it reopens this place while this session lasts."); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(link).then(done, manual);
    } else { manual(); }
  };

  View.prototype.toggle = function (kind, on) {
    var self = this;
    this.shown[kind] = on;
    var have = this.overlayData[kind];
    if (on && (!have || have.version !== this.config.version)) {
      fetch(this.base + "overlays/" + kind + ".json").then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      }).then(function (body) {
        self.overlayData[kind] = body;
        if (!body.available) { self.say(body.note || "This overlay is not available."); }
        self.redraw();
      }).catch(function (err) { self.say("The " + kind + " overlay could not be loaded (" + err.message + ")."); });
    }
    this.redraw();
  };

  View.prototype.transform = function () {          // level-0 px -> overlay canvas px
    var vp = this.viewer.viewport, OSD = this.OSD;
    var p0 = vp.imageToViewerElementCoordinates(new OSD.Point(0, 0));
    var p1 = vp.imageToViewerElementCoordinates(new OSD.Point(1000, 1000));
    return {x0: p0.x, y0: p0.y, s: (p1.x - p0.x) / 1000};
  };

  View.prototype.redraw = function () {
    if (!this.viewer || !this.viewer.world.getItemCount()) { return; }
    this.drawScale();
    var canvas = this.canvas, ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var t = this.transform(), data = this.overlayData;
    if (this.shown.heatmap && data.heatmap && data.heatmap.data) { this.drawHeatmap(ctx, t, w, h, data.heatmap.data); }
    if (this.shown.grid && data.grid && data.grid.data) { this.drawGrid(ctx, t, w, h, data.grid.data); }
    if (this.shown.tissue && data.tissue && data.tissue.data) { this.drawTissue(ctx, t, data.tissue.data); }
  };

  View.prototype.drawHeatmap = function (ctx, t, w, h, heat) {
    var span = (heat.max - heat.min) || 1, peak = Math.max(Math.abs(heat.min), Math.abs(heat.max)) || 1;
    var colour = heat.scale === "diverging" ? function (v) { return divergingColor(v / peak); } :
      function (v) { return heatColor((v - heat.min) / span); };
    heat.cells.forEach(function (c) {
      var x = t.x0 + c[0] * t.s, y = t.y0 + c[1] * t.s, cw = c[2] * t.s, ch = c[3] * t.s;
      if (x > w || y > h || x + cw < 0 || y + ch < 0) { return; }
      ctx.fillStyle = colour(c[4]);
      ctx.fillRect(x, y, Math.max(cw, 1), Math.max(ch, 1));
    });
  };

  View.prototype.drawGrid = function (ctx, t, w, h, grid) {
    var coords = grid.coords_level0, size = grid.patch_size_level0 * t.s;
    ctx.strokeStyle = "rgba(30,90,220,0.8)";
    ctx.lineWidth = size > 6 ? 1 : 0.5;
    ctx.beginPath();
    for (var i = 0; i + 1 < coords.length; i += 2) {
      var x = t.x0 + coords[i] * t.s, y = t.y0 + coords[i + 1] * t.s;
      if (x > w || y > h || x + size < 0 || y + size < 0) { continue; }
      ctx.rect(x, y, size, size);
    }
    ctx.stroke();
  };

  View.prototype.drawTissue = function (ctx, t, geojson) {
    ctx.strokeStyle = "rgba(20,160,60,0.95)";
    ctx.lineWidth = 2;
    ctx.beginPath();
    (geojson.features || []).forEach(function (f) {
      var g = f.geometry || {};
      var polygons = g.type === "Polygon" ? [g.coordinates] : (g.type === "MultiPolygon" ? g.coordinates : []);
      polygons.forEach(function (rings) {
        rings.forEach(function (ring) {
          ring.forEach(function (p, i) {
            var x = t.x0 + p[0] * t.s, y = t.y0 + p[1] * t.s;
            if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
          });
          ctx.closePath();
        });
      });
    });
    ctx.stroke();
  };

  View.prototype.drawScale = function () {
    var vp = this.viewer.viewport, config = this.config;
    var imageZoom = vp.viewportToImageZoom(vp.getZoom(true));          // screen px per level-0 px
    var baseMag = config.objective_power || (config.mpp ? 10 / config.mpp : null);
    this.mag.textContent = baseMag ? "\u00d7" + (baseMag * imageZoom).toFixed(baseMag * imageZoom >= 10 ? 0 : 1) +
      " (scanned at \u00d7" + (+baseMag.toFixed(1)) + ")" : "magnification unknown (no MPP)";
    if (!config.mpp) { this.scale.hidden = true; return; }
    var umPerPx = config.mpp / imageZoom, length = niceLength(150 * umPerPx);
    this.scale.hidden = false;
    this.scaleBar.style.width = (length / umPerPx).toFixed(1) + "px";
    this.scaleLabel.textContent = formatUm(+length.toPrecision(3));
    this.scale.dataset.um = String(length);
  };

  View.prototype.destroy = function () {
    if (this.viewer) { this.viewer.destroy(); this.viewer = null; }
  };

  function parseConfig(value) {
    if (!value) { return {}; }
    if (typeof value === "object") { return value; }
    try { return JSON.parse(value); } catch (e) { return {note: "The viewer got an unreadable value."}; }
  }

  function mount(host, config) {
    if (host.wsiv) {
      var same = host.wsiv.config.handle && host.wsiv.config.handle === config.handle && host.wsiv.viewer;
      if (same) {                              // the same slide: keep the place, refresh the overlays
        var view = host.wsiv;
        view.config = config;
        view.refreshToggles();
        Object.keys(view.shown).forEach(function (k) { if (view.shown[k]) { view.toggle(k, true); } });
        return view;
      }
      host.wsiv.destroy();
    }
    return new View(host, config);
  }

  function bindGradio(element, props, watch) {
    var host = element.querySelector(".wsiv-host") || element;
    mount(host, parseConfig(props.value));
    watch("value", function () { mount(host, parseConfig(props.value)); });
  }

  window.WsiViewer = {mount: mount, bindGradio: bindGradio, parseHash: parseHash};
})();
