// NICTER's live-map legend, in its order, keyed by the store's `flag_class` names.
// Colours are ours (saturated and distinct on the dark map); the order and kinds are NICTER's.
export const LEGEND = [
  { key: 'syn', label: 'TCP SYN', color: '#ff3b30' },
  { key: 'synack', label: 'TCP SYN/ACK', color: '#ff9500' },
  { key: 'ack', label: 'TCP ACK', color: '#ffd60a' },
  { key: 'fin', label: 'TCP FIN', color: '#30d158' },
  { key: 'rst', label: 'TCP RESET', color: '#00c7be' },
  { key: 'push', label: 'TCP PUSH', color: '#0a84ff' },
  { key: 'tcp_other', label: 'TCP Other', color: '#bf5af2' },
  { key: 'udp', label: 'UDP', color: '#ff2d92' },
  { key: 'icmp', label: 'ICMP', color: '#f2f2f7' },
  { key: 'other', label: 'Other', color: '#8e8e93' },
];

export const COLOR = Object.fromEntries(LEGEND.map((e) => [e.key, e.color]));

export function renderLegend(list) {
  list.replaceChildren(...LEGEND.map((e) => {
    const item = document.createElement('li');
    item.dataset.flagClass = e.key;
    item.dataset.color = e.color;
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = e.color;
    item.append(swatch, document.createTextNode(e.label));
    return item;
  }));
}
