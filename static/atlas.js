/* Atlas: search, grids, the image/attribution toggle, seeds and keyboard shortcuts.
 * A classic script (module scripts do not load from file://). The data comes from
 * data/search-index.js, which sets window.ATLAS_INDEX; nothing is fetched. All text from
 * the index goes through textContent or attributes, never innerHTML. */
(function () {
  "use strict";

  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var here = body.getAttribute("data-model") || "";
  var INDEX = window.ATLAS_INDEX || { models: [] };
  var several = INDEX.models.length > 1;
  var store = (function () {
    try {
      var s = window.sessionStorage;
      s.setItem("atlas-probe", "1");
      s.removeItem("atlas-probe");
      return s;
    } catch (e) {
      return null;
    }
  })();

  function remember(key, value) { if (store) store.setItem("atlas-" + key, value); }
  function recall(key) { return store ? store.getItem("atlas-" + key) : null; }
  function pad(n) { return ("000" + n).slice(-4); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  /* ---------- units: every class and channel, for search, grids and random ---------- */
  // Every model's classes and channels; a unit's scope names its model's folder, so that grids and
  // random stay within the model of the page while search covers the whole atlas.
  var units = [];
  INDEX.models.forEach(function (m) {
    var folder = m.folder || "";
    m.classes.forEach(function (c) {
      units.push({
        kind: "class", scope: folder + "classes", model: m.model, folder: folder, index: c.index, num: pad(c.index),
        name: c.name, label: pad(c.index) + " " + c.name, synonyms: c.synonyms, wnid: c.wnid, page: c.page,
        status: c.status, thumb: c.thumb, thumbOverlay: c.thumb_overlay, size: c.thumb_size, called: c.called || null,
        concept: c.concept_thumb ? { thumb: c.concept_thumb, thumbOverlay: c.concept_thumb_overlay, size: c.concept_thumb_size } : null,
        crop: c.concept_crop || null
      });
    });
    m.layers.forEach(function (layer) {
      layer.channels.forEach(function (ch) {
        units.push({
          kind: "channel", scope: folder + "layer:" + layer.slug, model: m.model, folder: folder, layer: layer.name,
          // a channel is named in words ("conv_head · channel 42"): no number column of its own
          channel: ch.channel, num: "", name: ch.label, label: ch.label, synonyms: [], wnid: "", page: ch.page,
          status: ch.status, thumb: ch.thumb, thumbOverlay: ch.thumb_overlay, size: ch.thumb_size,
          example: ch.example || null
        });
      });
    });
  });

  /* ---------- the picture view: plain image or attribution overlay ---------- */
  // The attribution view is the default (the Lens look; README says why); the reader's choice is remembered.
  var view = recall("view") === "plain" ? "plain" : "overlay";
  var seed = 0;

  // A picture that lists only its plain version was served in the attribution view: its src is the overlay.
  document.querySelectorAll("img[data-plain]:not([data-overlay])").forEach(function (img) {
    img.setAttribute("data-overlay", img.getAttribute("src"));
  });

  function applyView() {
    document.documentElement.classList.toggle("view-overlay", view === "overlay");
    document.querySelectorAll("[data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-view") === view ? "true" : "false");
    });
    document.querySelectorAll("img[data-overlay]").forEach(function (img) {
      var want = img.getAttribute(view === "overlay" ? "data-overlay" : "data-plain");
      if (img.getAttribute("src") !== want) img.setAttribute("src", want);
    });
    var stage = document.getElementById("stage");
    if (stage) {
      stage.querySelectorAll("img").forEach(function (img) {
        img.hidden = Number(img.getAttribute("data-seed")) !== seed;
      });
    }
    document.querySelectorAll(".seed-panel").forEach(function (p) {
      p.hidden = Number(p.getAttribute("data-seed")) !== seed;
    });
    document.querySelectorAll("button.seed").forEach(function (b) {
      b.setAttribute("aria-pressed", Number(b.getAttribute("data-seed")) === seed ? "true" : "false");
    });
  }

  function setView(v) {
    view = v;
    remember("view", v);
    applyView();
  }

  function toggleView() {
    var button = document.querySelector("[data-view]");
    if (button && button.disabled) return;
    setView(view === "overlay" ? "plain" : "overlay");
  }

  document.addEventListener("click", function (e) {
    var target = e.target instanceof Element ? e.target : null;
    var v = target && target.closest("[data-view]");
    if (v && !v.disabled) setView(v.getAttribute("data-view"));
    var s = target && target.closest("button.seed");
    if (s) { seed = Number(s.getAttribute("data-seed")); applyView(); }
  });

  /* ---------- grids drawn from the index: small pages even with 1000 tiles ---------- */
  // Classes by their logit's picture (the default) or by their most important concept's.
  // Until the reader chooses, an atlas with concepts but no class picture yet opens on its concepts (the
  // toggle's data-default), and a layer with dataset examples but no picture on its examples.
  function initial(key, value, other) {
    var saved = recall(key);
    if (saved !== null) return saved === value ? value : other;
    var toggle = document.querySelector('[data-toggle="' + key + '"]');
    return toggle && toggle.getAttribute("data-default") === value ? value : other;
  }
  var by = initial("by", "concept", "logit");
  // Channels by their picture (the default) or by their top dataset example, as Microscope shows them.
  var layerBy = initial("layer-by", "example", "picture");

  // A patch of a photo (a concept's top crop, a channel's top dataset example) stands in for a picture
  // that is not rendered yet: such a tile is shown even with "Hide pending". Among the concepts'
  // pictures it is marked as a photo; the examples' view is all photos.
  function shownAs(u) {
    var same = { kind: u.kind, num: u.num, name: u.name, channel: u.channel, status: u.status, called: u.called,
                 label: u.label, thumb: u.thumb, thumbOverlay: u.thumbOverlay, size: u.size };
    if (by === "concept" && (u.concept || u.crop)) {
      same.called = null;  // the mark is about the class picture
      if (!u.concept) return photo(same, u.crop, true, "the photo patch that shows its most important concept most; the concept has no picture yet");
      // the concept's picture is shown, whatever became of the class's own
      same.thumb = u.concept.thumb; same.thumbOverlay = u.concept.thumbOverlay; same.size = u.concept.size;
      same.status = "ok";
    }
    if (u.kind === "channel" && layerBy === "example" && u.example) {
      if (u.status !== "ok") return photo(same, u.example, false, "its top dataset example; the channel has no picture yet");
      same.thumb = u.example; same.thumbOverlay = u.example; same.size = null;
    }
    return same;
  }

  function photo(u, path, marked, what) {
    u.thumb = path; u.thumbOverlay = path; u.size = null;
    u.status = "patch"; u.photo = marked; u.label = u.label + ": " + what;
    return u;
  }

  function tile(unit) {
    var u = shownAs(unit);
    var a = el("a", "tile " + u.status);
    a.href = root + unit.page;
    a.title = u.label;
    if (u.thumb) {
      var img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.width = u.size ? u.size[0] : 192;
      img.height = u.size ? u.size[1] : 192;
      img.alt = "";  // the caption under it names the tile
      img.setAttribute("data-plain", root + u.thumb);
      img.setAttribute("data-overlay", root + u.thumbOverlay);
      img.src = root + (view === "overlay" ? u.thumbOverlay : u.thumb);
      a.appendChild(img);
    } else {
      a.appendChild(el("span", "ph " + u.status, u.status));
    }
    if (u.photo) a.appendChild(el("span", "photo-mark", "photo"));
    if (u.called) {
      var mark = el("span", "called-mark", "!");
      mark.setAttribute("role", "img");
      mark.title = u.called;
      mark.setAttribute("aria-label", u.called);
      a.appendChild(mark);
    }
    var cap = el("span", "cap");
    if (u.kind === "class") cap.appendChild(el("span", "n", u.num));
    cap.appendChild(el("span", "name", u.kind === "class" ? u.name : "channel " + u.channel));
    a.appendChild(cap);
    return a;
  }

  function drawGrids() {
    document.querySelectorAll("[data-grid]").forEach(function (grid) {
      var scope = here + (grid.getAttribute("data-grid") === "layer" ? "layer:" + grid.getAttribute("data-layer") : "classes");
      var frag = document.createDocumentFragment();
      units.forEach(function (u) { if (u.scope === scope) frag.appendChild(tile(u)); });
      grid.replaceChildren(frag);
    });
    document.querySelectorAll("[data-by]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-by") === by ? "true" : "false");
    });
    document.querySelectorAll("[data-layer-by]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-layer-by") === layerBy ? "true" : "false");
    });
  }
  drawGrids();
  document.querySelectorAll("[data-layer-by]").forEach(function (b) {
    b.addEventListener("click", function () {
      layerBy = b.getAttribute("data-layer-by");
      remember("layer-by", layerBy);
      drawGrids();
    });
  });
  document.querySelectorAll("[data-by]").forEach(function (b) {
    b.addEventListener("click", function () {
      by = b.getAttribute("data-by");
      remember("by", by);
      drawGrids();
    });
  });

  var hidePending = document.getElementById("hide-pending");
  if (hidePending) {
    // Until the reader chooses, a mostly unrendered atlas (the CPU subset) opens on what exists.
    var savedHide = recall("hide-pending");
    hidePending.checked = savedHide === null ? hidePending.getAttribute("data-default") === "1" : savedHide === "1";
    var applyHide = function () {
      document.querySelectorAll("[data-grid]").forEach(function (g) { g.classList.toggle("hide-pending", hidePending.checked); });
      remember("hide-pending", hidePending.checked ? "1" : "0");
    };
    hidePending.addEventListener("change", applyHide);
    applyHide();
  }

  /* ---------- random ---------- */
  function goRandom() {
    var scope = body.getAttribute("data-scope");
    if (scope === here + "layers") scope = null;
    var path = location.pathname;
    var mine = function (u) { return scope ? u.scope === scope : u.folder === here; };
    // a picture, or a class's concepts or a channel's examples before it: the pages that show something
    var pool = units.filter(function (u) { return mine(u) && (u.status === "ok" || u.concept || u.crop || u.example); });
    if (!pool.length) pool = units.filter(mine);
    var others = pool.filter(function (u) { return path.slice(-u.page.length) !== u.page; });
    if (others.length) pool = others;
    if (!pool.length) return;
    location.href = root + pool[Math.floor(Math.random() * pool.length)].page;
  }
  var randomButton = document.getElementById("random");
  if (randomButton) randomButton.addEventListener("click", goRandom);

  /* ---------- search: name, synonym, WordNet id or index, as you type ---------- */
  var input = document.getElementById("q");
  var list = document.getElementById("results");
  var matches = [];
  var active = -1;

  function words(text) { return " " + text.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim() + " "; }

  function level(text, q, qw) {
    // 0: the whole text; 1: whole words of it ("cat" in "tabby cat"); 2: the start of a word
    // ("cat" in "catamaran"); 3: anywhere ("cat" in "wildcat"); -1: not at all.
    var t = text.toLowerCase();
    if (t === q) return 0;
    var w = words(text);
    if (w.indexOf(qw + " ") >= 0) return 1;
    if (w.indexOf(qw) >= 0) return 2;
    return t.indexOf(q) >= 0 ? 3 : -1;
  }

  function rank(u, q, num) {
    // Lower is better; -1 means no match. A name and a synonym count alike ("tabby cat" is a name of
    // class 281); classes come before channels at equal rank, then index order.
    // the page's own model comes first at equal rank: the same class in another model is a step away
    var away = u.folder === here ? 0 : 0.1;
    var bias = (u.kind === "class" ? 0 : 0.25) + away;
    if (num !== null) {
      if (u.kind === "class") return u.index === num ? away : (String(u.index).indexOf(String(num)) === 0 ? 4 + away : -1);
      return u.channel === num ? 6 + away : -1;
    }
    if (u.wnid && u.wnid.toLowerCase() === q) return away;
    var qw = " " + q.replace(/[^a-z0-9]+/g, " ").trim();
    var best = -1;
    var n = level(u.name, q, qw);
    if (n >= 0) best = 1 + 1.5 * n + bias;
    for (var i = 0; i < u.synonyms.length; i++) {
      var s = level(u.synonyms[i], q, qw);
      if (s >= 0 && (best < 0 || 1 + 1.5 * s + away < best)) best = 1 + 1.5 * s + away;
    }
    if (best >= 0) return best;
    if (u.wnid && u.wnid.toLowerCase().indexOf(q) === 0) return 4 + away;
    return -1;
  }

  function why(u, q, num) {
    if (u.kind !== "class") return u.layer;
    if (num !== null) return "index " + u.index;
    if (u.wnid && u.wnid.toLowerCase().indexOf(q) === 0) return u.wnid;
    if (u.name.toLowerCase().indexOf(q) >= 0) return u.synonyms.slice(1).join(", ");
    for (var i = 0; i < u.synonyms.length; i++) {
      if (u.synonyms[i].toLowerCase().indexOf(q) >= 0) return "also: " + u.synonyms[i];
    }
    return "";
  }

  function search(text) {
    var q = text.trim().toLowerCase().replace(/\s+/g, " ");
    if (!q) return [];
    var num = /^#?\d{1,4}$/.test(q) ? Number(q.replace("#", "")) : null;
    if (num !== null) q = q.replace("#", "");
    var found = [];
    units.forEach(function (u) {
      var r = rank(u, q, num);
      if (r >= 0) found.push({ u: u, r: r, why: why(u, q, num) });
    });
    found.sort(function (a, b) { return a.r - b.r || (a.u.index || 0) - (b.u.index || 0) || a.u.name.localeCompare(b.u.name); });
    return found.slice(0, 12);
  }

  function setActive(i) {
    active = i;
    list.querySelectorAll("[role=option]").forEach(function (li, j) {
      li.setAttribute("aria-selected", j === i ? "true" : "false");
      if (j === i) li.scrollIntoView({ block: "nearest" });
    });
    if (i >= 0) input.setAttribute("aria-activedescendant", "result-" + i);
    else input.removeAttribute("aria-activedescendant");
  }

  function closeResults() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    setActive(-1);
  }

  function showResults() {
    matches = search(input.value);
    list.replaceChildren();
    if (!input.value.trim()) { closeResults(); return; }
    if (!matches.length) {
      list.appendChild(el("li", "empty", "No class or channel matches"));
    }
    matches.forEach(function (m, i) {
      var li = el("li");
      li.id = "result-" + i;
      li.setAttribute("role", "option");
      var a = el("a");
      a.href = root + m.u.page;
      a.tabIndex = -1;
      if (m.u.thumb) {
        var img = el("img");
        img.src = root + m.u.thumb;
        img.width = 36;
        img.height = 36;
        img.alt = "";
        a.appendChild(img);
      } else {
        a.appendChild(el("span", "ph"));
      }
      if (m.u.num) a.appendChild(el("span", "r-num", m.u.num));
      var label = el("span", "r-name", m.u.name);
      var why = several ? m.u.model + (m.why ? " · " + m.why : "") : m.why;
      if (why) label.appendChild(el("span", "r-why", why));
      a.appendChild(label);
      li.appendChild(a);
      list.appendChild(li);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    setActive(matches.length ? 0 : -1);
  }

  if (input && list) {
    input.addEventListener("input", showResults);
    input.addEventListener("focus", function () { if (input.value.trim()) showResults(); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" && matches.length) { e.preventDefault(); setActive((active + 1) % matches.length); }
      else if (e.key === "ArrowUp" && matches.length) { e.preventDefault(); setActive((active - 1 + matches.length) % matches.length); }
      else if (e.key === "Enter") {
        e.preventDefault();
        var m = matches[active >= 0 ? active : 0];
        if (m) location.href = root + m.u.page;
      } else if (e.key === "Escape") {
        if (input.value) { input.value = ""; closeResults(); } else { input.blur(); }
      }
    });
    document.addEventListener("click", function (e) {
      if (!(e.target instanceof Node) || !input.parentNode.contains(e.target)) closeResults();
    });
  }

  /* ---------- a concept's crops, drawn into its card from the names it lists (a page stays small) ---------- */
  document.querySelectorAll(".c-crops[data-crops]").forEach(function (strip) {
    var base = strip.closest("[data-crops-base]").getAttribute("data-crops-base");
    var names = strip.getAttribute("data-crops").split(" ");
    var concept = strip.closest("li.concept").id.replace("concept-", "");
    var frag = document.createDocumentFragment();
    names.forEach(function (name, i) {
      var img = el("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = "Crop " + (i + 1) + " of " + names.length + " of concept " + concept;
      img.src = base + name + ".webp";
      frag.appendChild(img);
    });
    strip.replaceChildren(frag);
  });

  /* ---------- a concept in a modal dialog: its picture, what it is, all its crops large ---------- */
  // Opens from the concept's picture (which without script simply links the full render) or its
  // crops button; Escape closes it and focus goes back to what opened it. Like the help, it exists
  // only with script, so the script draws it.
  var crops = null;
  var cropsOpener = null;
  if (document.querySelector("li.concept")) {
    crops = el("dialog", "crops");
    crops.id = "crops";
    crops.setAttribute("aria-labelledby", "crops-title");
    var cropsHead = el("div", "crops-head");
    var cropsTitle = el("h2", null, "Crops");
    cropsTitle.id = "crops-title";
    var cropsClose = el("button", "btn", "Close");
    cropsClose.type = "button";
    cropsClose.id = "crops-close";
    cropsHead.append(cropsTitle, cropsClose);
    var cropsBody = el("div", "crops-body");
    var cropGrid = el("div", "crop-grid");
    cropsBody.appendChild(cropGrid);
    crops.append(cropsHead, cropsBody);
    body.appendChild(crops);
    var cropPic = el("img", "crops-pic");
    var openConcept = function (card, opener) {
      var head = card.querySelector("h3");
      var share = head.querySelector(".share");
      var name = document.querySelector("h1");
      cropsTitle.textContent = head.firstChild.textContent.trim() + " of " + name.textContent.trim()
        + (share ? " · " + share.textContent : "");
      var pic = card.querySelector(".c-pic");
      cropsBody.classList.toggle("no-pic", !pic);
      if (!pic) cropPic.remove();
      if (pic) {
        cropsBody.insertBefore(cropPic, cropGrid);
        // the overlay's name beside the picture's, as atlas.site.pages.Media names them
        cropPic.setAttribute("data-plain", pic.getAttribute("href"));
        cropPic.setAttribute("data-overlay", pic.getAttribute("href").replace(/detail\.webp$/, "detail-overlay.webp"));
        cropPic.setAttribute("src", cropPic.getAttribute(view === "overlay" ? "data-overlay" : "data-plain"));
        cropPic.alt = pic.querySelector("img").alt;
      }
      cropGrid.replaceChildren();
      var shown = card.querySelectorAll(".c-crops img");
      shown.forEach(function (small, i) {
        var img = el("img");
        img.src = small.getAttribute("src");
        img.alt = "Crop " + (i + 1) + " of " + shown.length;
        cropGrid.appendChild(img);
      });
      cropsOpener = opener;
      crops.showModal();
      cropsClose.focus();
    };
    document.querySelectorAll("li.concept").forEach(function (card) {
      var pic = card.querySelector(".c-pic");
      if (pic) pic.addEventListener("click", function (e) { e.preventDefault(); openConcept(card, pic); });
      var button = card.querySelector("button.crops-open");
      if (button) button.addEventListener("click", function () { openConcept(card, button); });
    });
    cropsClose.addEventListener("click", function () { crops.close(); });
    crops.addEventListener("close", function () { if (cropsOpener) cropsOpener.focus(); });
  }

  /* ---------- help and keyboard shortcuts ---------- */
  // The help dialog opens only with script, so the script draws it rather than every page carrying it.
  // Its switch turns the single-key shortcuts off (WCAG 2.1.4): a speech-input user's words are keys.
  var KEYS = [
    ["/", "Search by name, synonym, WordNet id or index"],
    ["\u2191 \u2193 Enter", "Pick a search result"],
    ["\u2190 \u2192 or k j", "Previous / next rendered page"],
    ["r", "A random rendered page"],
    ["t", "Toggle image / attribution overlay"],
    ["?", "This help"]
  ];
  var keysOn = recall("keys") !== "off";
  var help = (function () {
    var dialog = el("dialog", "help");
    dialog.id = "help";
    dialog.setAttribute("aria-labelledby", "help-title");
    var title = el("h2", null, "Keyboard shortcuts");
    title.id = "help-title";
    var list = el("dl", "keys");
    KEYS.forEach(function (k) {
      var dt = el("dt");
      k[0].split(" ").forEach(function (key, i) {
        if (i) dt.appendChild(document.createTextNode(" "));
        dt.appendChild(key === "or" ? document.createTextNode("or") : el("kbd", null, key));
      });
      var row = el("div");
      row.appendChild(dt);
      row.appendChild(el("dd", null, k[1]));
      list.appendChild(row);
    });
    var label = el("label", "check");
    var box = el("input");
    box.type = "checkbox";
    box.id = "keys-on";
    box.checked = keysOn;
    box.addEventListener("change", function () { keysOn = box.checked; remember("keys", keysOn ? "on" : "off"); });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" Use these shortcuts"));
    var close = el("button", "btn", "Close");
    close.type = "button";
    close.id = "help-close";
    close.addEventListener("click", function () { dialog.close(); });
    [title, list, label, close].forEach(function (node) { dialog.appendChild(node); });
    body.appendChild(dialog);
    return dialog;
  })();
  function openHelp() { if (!help.open) help.showModal(); }
  var helpOpen = document.getElementById("help-open");
  if (helpOpen) helpOpen.addEventListener("click", openHelp);

  function follow(rel) {
    var link = document.querySelector("a[rel=" + rel + "]");
    if (link) location.href = link.href;
  }

  function typing(t) {
    // Shortcuts stay off while text is being entered, not while a checkbox or button has focus.
    if (!(t instanceof Element)) return false;
    if (t.closest("textarea, select, [contenteditable]")) return true;
    var field = t.closest("input");
    return !!field && !/^(checkbox|radio|button|submit|reset|range|color)$/.test(field.type);
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (!keysOn || typing(e.target) || help.open || (crops && crops.open)) return;
    switch (e.key) {
      case "/": e.preventDefault(); input.focus(); input.select(); break;
      case "ArrowLeft": case "k": follow("prev"); break;
      case "ArrowRight": case "j": follow("next"); break;
      case "r": goRandom(); break;
      case "t": toggleView(); break;
      case "?": e.preventDefault(); openHelp(); break;
      default: return;
    }
  });

  applyView();
})();
