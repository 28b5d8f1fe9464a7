/**
 * Keys that occur twice in one object of a JSON text (JSON.parse silently keeps the last
 * one, so a duplicate never shows after parsing). Returns them as `path.key`.
 */
export function duplicateKeys(json: string): string[] {
  const duplicates: string[] = [];
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  let i = 0;
  while (i < json.length) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      let text = '';
      while (j < json.length && json[j] !== '"') {
        text += json[j] === '\\' ? json.slice(j, j + 2) : json[j];
        j += json[j] === '\\' ? 2 : 1;
      }
      const keys = stack[stack.length - 1];
      if (keys && expectKey) {
        if (keys.has(text)) duplicates.push(text);
        keys.add(text);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack[stack.length - 1] != null;
    i++;
  }
  return duplicates;
}
