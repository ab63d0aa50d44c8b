/**
 * A small, strict XML reader for TwiML in the Twilio stand-in and tests: elements, attributes, text, character and
 * the five predefined entity references, comments, an optional XML declaration. Anything not well-formed throws
 * (unclosed or mismatched tags, a bare `&` or `<`, duplicate attributes, text outside the root).
 * Not a general XML parser: no DTDs, CDATA or processing instructions other than the declaration.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | string;

export class XmlError extends Error {}

const NAME = /^[A-Za-z_][\w.-]*/;
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(text: string, at: number): string {
  if (text.includes("<")) throw new XmlError(`'<' in text or attribute near ${at}`);
  return text.replace(/&([^;&\s]*);?/g, (whole, ref: string) => {
    if (!whole.endsWith(";")) throw new XmlError(`bare '&' near ${at}`);
    if (ref in ENTITIES) return ENTITIES[ref] as string;
    const num = /^#x([0-9a-fA-F]+)$/.exec(ref)?.[1] ?? /^#(\d+)$/.exec(ref)?.[1];
    if (num !== undefined) return String.fromCodePoint(ref.startsWith("#x") ? parseInt(num, 16) : parseInt(num, 10));
    throw new XmlError(`unknown entity &${ref}; near ${at}`);
  });
}

export function parseXml(input: string): XmlElement {
  let i = 0;
  const s = input;
  const skipMisc = () => {
    for (;;) {
      const ws = /^\s*/.exec(s.slice(i))?.[0] ?? "";
      i += ws.length;
      if (s.startsWith("<!--", i)) {
        const end = s.indexOf("-->", i + 4);
        if (end < 0) throw new XmlError("unclosed comment");
        i = end + 3;
        continue;
      }
      return;
    }
  };

  if (s.startsWith("<?xml")) {
    const end = s.indexOf("?>");
    if (end < 0) throw new XmlError("unclosed XML declaration");
    i = end + 2;
  }
  skipMisc();
  const root = parseElement();
  skipMisc();
  if (i !== s.length) throw new XmlError(`content after the root element at ${i}`);
  return root;

  function parseElement(): XmlElement {
    if (s[i] !== "<") throw new XmlError(`expected '<' at ${i}`);
    i++;
    const name = NAME.exec(s.slice(i))?.[0];
    if (!name) throw new XmlError(`expected an element name at ${i}`);
    i += name.length;
    const attributes: Record<string, string> = {};
    for (;;) {
      const ws = /^\s*/.exec(s.slice(i))?.[0] ?? "";
      i += ws.length;
      if (s.startsWith("/>", i)) {
        i += 2;
        return { name, attributes, children: [] };
      }
      if (s[i] === ">") {
        i++;
        break;
      }
      if (ws === "") throw new XmlError(`expected whitespace before an attribute at ${i}`);
      const attr = NAME.exec(s.slice(i))?.[0];
      if (!attr) throw new XmlError(`expected an attribute name at ${i}`);
      i += attr.length;
      const eq = /^\s*=\s*/.exec(s.slice(i))?.[0];
      if (!eq) throw new XmlError(`expected '=' after ${attr} at ${i}`);
      i += eq.length;
      const quote = s[i];
      if (quote !== '"' && quote !== "'") throw new XmlError(`expected a quoted value for ${attr} at ${i}`);
      const end = s.indexOf(quote, i + 1);
      if (end < 0) throw new XmlError(`unclosed attribute ${attr}`);
      if (attr in attributes) throw new XmlError(`duplicate attribute ${attr}`);
      attributes[attr] = decode(s.slice(i + 1, end), i);
      i = end + 1;
    }
    const children: XmlNode[] = [];
    for (;;) {
      if (i >= s.length) throw new XmlError(`unclosed <${name}>`);
      if (s.startsWith("</", i)) {
        const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(s.slice(i));
        if (!close || close[1] !== name) throw new XmlError(`expected </${name}> at ${i}`);
        i += close[0].length;
        return { name, attributes, children };
      }
      if (s.startsWith("<!--", i)) {
        const end = s.indexOf("-->", i + 4);
        if (end < 0) throw new XmlError("unclosed comment");
        i = end + 3;
        continue;
      }
      if (s[i] === "<") {
        children.push(parseElement());
        continue;
      }
      const next = s.indexOf("<", i);
      const end = next < 0 ? s.length : next;
      children.push(decode(s.slice(i, end), i));
      i = end;
    }
  }
}

/** The concatenated text of an element and its descendants. */
export function textOf(node: XmlNode): string {
  return typeof node === "string" ? node : node.children.map(textOf).join("");
}

/** Direct child elements (text ignored). */
export function elementsOf(el: XmlElement): XmlElement[] {
  return el.children.filter((c): c is XmlElement => typeof c !== "string");
}
