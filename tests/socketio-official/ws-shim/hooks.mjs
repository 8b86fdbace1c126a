// Module resolution hook: `import ... from "ws"` resolves to ws.mjs, which gets the URL of the
// real package (resolved from the importing file, i.e. the suite's own node_modules) in its
// query string. Imports made by ws.mjs itself are left alone.
const SHIM = new URL("./ws.mjs", import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL ?? "";
  if (specifier === "ws" && !parent.startsWith(SHIM)) {
    const real = await nextResolve(specifier, context);
    return {
      url: `${SHIM}?real=${encodeURIComponent(real.url)}`,
      format: "module",
      shortCircuit: true,
    };
  }
  return nextResolve(specifier, context);
}
