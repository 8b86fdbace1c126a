// Preloaded with `node --import` (see ../run.sh): installs hooks.mjs, which hands the official
// test suites our ws.mjs whenever they import "ws".
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
