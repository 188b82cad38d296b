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
