// DOM helpers. Everything is built with createElement and textContent: text from
// visitors (names, messages, page titles) can never become markup. There is no
// innerHTML anywhere in the console.

/**
 * Builds an element. `props`: `class`, `text`, `dir`, `data` (dataset), `on`
 * (event listeners), `attrs` (attributes), or any DOM property (value, type, ...).
 * Children are nodes, strings (as text) or arrays; null/false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  // A button is a plain button unless it says otherwise (never an accidental submit).
  if (tag === "button") element.type = "button";
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key === "data") Object.assign(element.dataset, value);
    else if (key === "on") for (const [name, fn] of Object.entries(value)) element.addEventListener(name, fn);
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) element.setAttribute(name, v);
    else element[key] = value;
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces every child of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") element.textContent = value;
    else element.setAttribute(key, value);
  }
  for (const child of children) if (child) element.appendChild(child);
  return element;
}

/** A random client id (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
