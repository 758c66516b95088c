// Lists several pages choose from (organisations in scope), read through every cursor once.

import * as api from "./api.js";
import { useEffect, useState } from "./ui.js";

const KIND_NAMES = { region_office: "区级", street: "街道", community: "社区", social_org: "社会组织" };
export const kindName = (kind) => KIND_NAMES[kind] || kind;

/** Every organisation in the caller's scope (of `kind`, if given): `{items, error}`. */
export function useOrganisations(kind) {
  const [state, setState] = useState({ items: [], error: null });
  useEffect(() => {
    let live = true;
    everyPage("/organisations", { kind }, () => live).then(
      (items) => live && setState({ items, error: null }),
      (error) => live && setState({ items: [], error }),
    );
    return () => {
      live = false;
    };
  }, [kind]);
  return state;
}

/** Every item of a cursor-paginated list of the API, a hundred a call; stops early once `live()` is false. */
export async function everyPage(path, query = {}, live = () => true) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(path, { query: { ...query, cursor, limit: 100 } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && live());
  return items;
}
