// Overview: placeholder until the charts land.
import { el } from "./api.js";

export async function overviewPage(root) {
  root.append(el("h1", {}, "Overview"));
}
