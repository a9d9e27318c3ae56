// Boxes over pictures: SVG overlays in the image's original pixels (the viewBox does the
// scaling, so no inline style is needed under the page's Content-Security-Policy), and
// dragging a box on a picture.
const NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes and children. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** "x0,y0,x1,y1" of a box given as four numbers. */
export const boxText = (box) => box.map((v) => Math.round(v)).join(",");

/** The caption of a found box: its label and score. */
export function boxName(found) {
  const score = typeof found.score === "number" ? ` ${found.score.toFixed(2)}` : "";
  return `${found.label ?? "object"}${score}`;
}

/**
 * An overlay for a picture of `width` x `height` original pixels drawing `boxes`
 * ([{box: [x0, y0, x1, y1], label, score}]). `cover` matches an <img> shown with
 * object-fit: cover (cropped to its frame); otherwise the picture fills its frame.
 */
export function boxOverlay(width, height, boxes, { cover = false, kind = "found" } = {}) {
  const font = Math.max(width, height) / 28;
  return svg("svg", {
    class: `boxes ${kind}`, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true",
    preserveAspectRatio: cover ? "xMidYMid slice" : "none",
    "data-count": String(boxes.length),
  }, ...boxes.map((found) => {
    const [x0, y0, x1, y1] = found.box;
    return svg("g", { class: "box", "data-box": boxText(found.box) },
      svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0,
                    "vector-effect": "non-scaling-stroke" }),
      found.label === undefined ? null
        : svg("text", { x: x0 + font / 4, y: Math.max(y0, font) - font / 4,
                        "font-size": font }, boxName(found)));
  }));
}

/** Put `overlay` over the picture in `frame` (replacing any overlay of the same kind). */
export function showOverlay(frame, overlay) {
  const kind = [...overlay.classList].find((name) => name !== "boxes");
  frame.querySelectorAll(`svg.boxes.${kind}`).forEach((old) => old.remove());
  frame.append(overlay);
}

/** Remove every overlay of `kind` from `frame`. */
export function clearOverlay(frame, kind) {
  frame.querySelectorAll(`svg.boxes.${kind}`).forEach((old) => old.remove());
}

/**
 * Let a person drag a box over the picture in `frame`; `size()` gives the picture's
 * original [width, height] (or null when unknown), `done(box)` gets the box in original
 * pixels. A click (no drag) does nothing; the box is drawn while dragging.
 */
export function dragBox(frame, size, done) {
  let start = null;
  let live = null;
  const point = (event) => {
    const rect = frame.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return [clamp((event.clientX - rect.left) / rect.width),
            clamp((event.clientY - rect.top) / rect.height)];
  };
  const corners = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]),
                             Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  frame.addEventListener("click", (event) => event.stopPropagation());
  frame.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    start = point(event);
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x0, y0, x1, y1] = corners(start, point(event));
    live?.remove();
    live = svg("svg", { class: "boxes dragging", viewBox: "0 0 1 1",
                        preserveAspectRatio: "none", "aria-hidden": "true" },
      svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0,
                    "vector-effect": "non-scaling-stroke" }));
    frame.append(live);
  });
  frame.addEventListener("pointerup", (event) => {
    if (!start) return;
    const fractions = corners(start, point(event));
    start = null;
    live?.remove();
    live = null;
    const dims = size();
    if (!dims || fractions[2] - fractions[0] < 0.02 || fractions[3] - fractions[1] < 0.02) return;
    const [width, height] = dims;
    const box = [Math.floor(fractions[0] * width), Math.floor(fractions[1] * height),
                 Math.ceil(fractions[2] * width), Math.ceil(fractions[3] * height)];
    done([box[0], box[1], Math.min(box[2], width), Math.min(box[3], height)]);
  });
  frame.addEventListener("pointercancel", () => { start = null; live?.remove(); live = null; });
}
