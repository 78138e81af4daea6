/** One word for sh: left bare when it is plainly safe, otherwise single-quoted. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
