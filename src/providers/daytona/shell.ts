/** One argument for the sandbox's sh, quoted only when it needs it. */
export { shellQuote as quote } from "../../base/quote";
