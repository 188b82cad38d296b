// The JSON API of `iotscope serve`, same origin. Under `serve --orgs` an organization's token (kept
// for this tab only, in sessionStorage) is sent as a bearer token; without one the API gives aggregates.
const TOKEN_KEY = 'iotscope-token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

export async function getJSON(path) {
  const headers = { Accept: 'application/json' };
  if (token.get()) headers.Authorization = `Bearer ${token.get()}`;
  const response = await fetch(path, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

// A columnar answer ({field: [values...]}, every array as long; /api/map's points) as one object per row.
export function rows(columns) {
  const fields = Object.keys(columns);
  const n = fields.length ? columns[fields[0]].length : 0;
  return Array.from({ length: n }, (_, i) => Object.fromEntries(fields.map((f) => [f, columns[f][i]])));
}
