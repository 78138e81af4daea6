/** One argument for the sandbox's sh, quoted only when it needs it. */
export const quote = (value: string) => (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`);
