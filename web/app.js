// The buyer's and the organizer's pages. They use the public HTTP API only (the same routes any
// client calls) and take live updates from its Server-Sent Events: a token's place in the
// waiting room, a schedule's seat map and a reservation's saga. Events are read with fetch(), not
// EventSource, because the token and reservation streams need the Authorization header.

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const notice = document.getElementById('notice');

/// The signed-in session ({token, expiresAt, user}) of this tab.
const session = {
  get() {
    const s = JSON.parse(sessionStorage.getItem('session') || 'null');
    return s && new Date(s.expiresAt) > new Date() ? s : null;
  },
  set(s) { sessionStorage.setItem('session', JSON.stringify(s)); },
  clear() { sessionStorage.clear(); },
};

/// Streams of the page shown; a new page stops them.
let page = new AbortController();

// ---- small helpers --------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function say(text, bad = false) {
  notice.textContent = text;
  notice.className = bad ? 'bad' : '';
  notice.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { notice.hidden = true; }, 5000);
}

const won = (n) => `${Number(n).toLocaleString('en')} won`;
const when = (t) => (t ? new Date(t).toLocaleString() : '');

/// An API call; answers the JSON body, or throws the problem's detail.
async function api(method, path, { body, headers = {}, auth = true } = {}) {
  const s = session.get();
  const h2 = { ...headers };
  if (auth && s) h2.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) h2['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers: h2, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(json?.detail || json?.title || `${res.status}`);
    err.status = res.status;
    err.code = json?.code;
    throw err;
  }
  return json;
}

/// Reads a Server-Sent Events stream, calling `onEvent(name, data)` per event, until the stream
/// ends or the page changes. Reconnects after a dropped connection.
async function follow(path, onEvent, { auth = true } = {}) {
  const signal = page.signal;
  while (!signal.aborted) {
    try {
      const s = session.get();
      const headers = auth && s ? { Authorization: `Bearer ${s.token}` } : {};
      const res = await fetch(path, { headers, signal });
      if (!res.ok) throw new Error(`${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const raw = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          let data = '';
          for (const line of raw.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) onEvent(name, JSON.parse(data));
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

// ---- pages ----------------------------------------------------------------------------------

function renderNav() {
  const s = session.get();
  const links = [h('a', { href: '#/' }, 'Concerts')];
  if (s) {
    links.push(h('a', { href: '#/reservations' }, 'My reservations'), h('a', { href: '#/wallet' }, 'Wallet'));
    if (s.user.role === 'admin') links.push(h('a', { href: '#/organizer' }, 'Organizer'));
    links.push(
      h('span', { class: 'who', id: 'who' }, s.user.email),
      h('button', { id: 'sign-out', onclick: () => { session.clear(); location.hash = '#/'; route(); } }, 'Sign out'),
    );
  }
  nav.replaceChildren(...links);
}

function signIn() {
  const email = h('input', { id: 'email', type: 'email', required: true, autocomplete: 'username' });
  const password = h('input', { id: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'current-password' });
  const enter = async (signUp) => {
    try {
      const body = { email: email.value, password: password.value };
      if (signUp) await api('POST', '/users', { body, auth: false });
      session.set(await api('POST', '/sessions', { body, auth: false }));
      route();
    } catch (e) {
      say(e.message, true);
    }
  };
  show(h('section', {},
    h('h1', {}, 'Sign in'),
    h('form', { onsubmit: (e) => { e.preventDefault(); enter(false); } },
      h('label', {}, 'Email', email),
      h('label', {}, 'Password', password),
      h('button', { id: 'sign-in', type: 'submit' }, 'Sign in'),
      h('button', { id: 'sign-up', type: 'button', class: 'quiet', onclick: () => enter(true) }, 'Create an account'),
    )));
}

async function concerts() {
  const list = await api('GET', '/concerts?limit=50', { auth: false });
  const sections = [];
  for (const c of list.data) {
    const schedules = await api('GET', `/concerts/${c.id}/schedules?limit=50`, { auth: false });
    sections.push(h('section', {},
      h('h2', {}, c.name, ' ', h('span', { class: 'muted' }, `by ${c.host}`)),
      h('table', {},
        h('tr', {}, h('th', {}, 'Starts'), h('th', {}, 'Seats'), h('th', {}, 'Sale'), h('th', {})),
        schedules.data.map((s) => h('tr', {},
          h('td', {}, when(s.startsAt)),
          h('td', {}, String(s.seatCount)),
          h('td', {}, s.cancelledAt ? 'cancelled' : s.salesOpenAt && new Date(s.salesOpenAt) > new Date() ? `opens ${when(s.salesOpenAt)}` : 'on sale'),
          h('td', {}, s.cancelledAt ? null : h('a', { href: `#/sale/${s.id}`, 'data-schedule': s.id }, 'Buy tickets')),
        )))));
  }
  show(h('h1', {}, 'Concerts'), ...(sections.length ? sections : [h('p', { class: 'muted' }, 'No concerts yet.')]));
}

/// A sale: the waiting room until the token is admitted, then the live seat map.
async function sale(schedule) {
  const key = `queue:${schedule}`;
  let token;
  try {
    token = await api('POST', '/queue/tokens', { body: { scheduleId: schedule } });
  } catch (e) {
    show(h('section', {}, h('h1', {}, 'This sale'), h('p', { id: 'sale-closed' }, e.message)));
    return;
  }
  sessionStorage.setItem(key, token.token);
  const waiting = h('section', { id: 'waiting' });
  const seats = h('section', { id: 'seat-map' }, h('p', { class: 'muted' }, 'The seat map opens once you are admitted.'));
  show(h('h1', {}, 'Tickets'), waiting, seats);
  let admitted = false;
  const showToken = (t) => {
    const parts = [h('h2', {}, 'Waiting room'), h('p', {}, 'Your place: ', h('span', { class: 'status ' + t.status, id: 'queue-status' }, t.status))];
    if (t.status === 'WAITING') {
      parts.push(h('p', {}, 'Place ', h('span', { class: 'big', id: 'position' }, String(t.position)), ' in line; about ', h('span', { id: 'eta' }, String(t.etaSeconds)), ' s to go.'));
      if (t.salesOpenAt) parts.push(h('p', { class: 'muted' }, `The sale opens ${when(t.salesOpenAt)}; those who wait before it are drawn in a random order.`));
    } else if (t.status === 'ACTIVE') {
      parts.push(h('p', { class: 'muted' }, `You may book until ${when(t.activeUntil)}.`));
    }
    waiting.replaceChildren(...parts);
    if (t.status === 'ACTIVE' && !admitted) {
      admitted = true;
      seatMap(schedule, seats);
    }
  };
  showToken(token);
  follow(`/queue/tokens/${token.token}/events`, (name, t) => { if (name === 'token') showToken(t); });
}

const MAX_SEATS = 4;

/// The live seat map of a schedule: choose up to four free seats and hold them.
function seatMap(schedule, into) {
  const chosen = new Set();
  const grid = h('div', { class: 'seats', id: 'seats' });
  const hold = h('button', { id: 'hold', disabled: true }, 'Hold the chosen seats');
  let latest = [];
  const draw = () => {
    for (const n of [...chosen]) {
      if (latest.find((s) => s.seatNo === n)?.status !== 'AVAILABLE') chosen.delete(n);
    }
    grid.replaceChildren(...latest.map((s) => h('button', {
      class: `seat ${s.status}${chosen.has(s.seatNo) ? ' chosen' : ''}`,
      'data-seat': s.seatNo,
      'data-status': s.status,
      title: `Seat ${s.seatNo}: ${won(s.price)} (${s.status})`,
      disabled: s.status !== 'AVAILABLE',
      onclick: () => {
        if (chosen.has(s.seatNo)) chosen.delete(s.seatNo);
        else if (chosen.size < MAX_SEATS) chosen.add(s.seatNo);
        else say(`At most ${MAX_SEATS} seats.`, true);
        draw();
      },
    }, String(s.seatNo))));
    hold.disabled = chosen.size === 0;
    hold.textContent = chosen.size ? `Hold seats ${[...chosen].sort((a, b) => a - b).join(', ')}` : 'Hold the chosen seats';
  };
  hold.addEventListener('click', async () => {
    hold.disabled = true;
    try {
      const r = await api('POST', '/reservations', {
        body: { scheduleId: schedule, seatNos: [...chosen].sort((a, b) => a - b) },
        headers: { 'X-Queue-Token': sessionStorage.getItem(`queue:${schedule}`), Prefer: 'wait=5' },
      });
      location.hash = `#/reservation/${r.id}`;
    } catch (e) {
      say(e.message, true);
      draw();
    }
  });
  into.replaceChildren(
    h('h2', {}, 'Choose your seats'),
    h('p', { class: 'legend' }, h('span', {}, h('i', { style: 'background:var(--free)' }), 'free'), h('span', {}, h('i', { style: 'background:var(--held)' }), 'held'), h('span', {}, h('i', { style: 'background:var(--sold)' }), 'sold')),
    grid, hold);
  follow(`/schedules/${schedule}/seats/events`, (name, map) => {
    if (name !== 'seats') return;
    latest = map.seats;
    draw();
  }, { auth: false });
}

/// One reservation as its saga moves: status, hold countdown, timeline; pay or cancel while HELD.
function reservation(id) {
  const box = h('section', { id: 'reservation' }, h('p', {}, 'Loading…'));
  show(h('h1', {}, 'Reservation'), box);
  let current = null;
  const countdown = () => {
    const el = document.getElementById('countdown');
    if (!el || !current?.heldUntil) return;
    const left = Math.max(0, Math.round((new Date(current.heldUntil) - new Date()) / 1000));
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  };
  const timer = setInterval(countdown, 1000);
  page.signal.addEventListener('abort', () => clearInterval(timer));
  const act = async (what) => {
    const queue = sessionStorage.getItem(`queue:${current.scheduleId}`) || '';
    try {
      if (what === 'pay') {
        const r = await api('POST', `/reservations/${id}/payment`, { headers: { 'X-Queue-Token': queue, Prefer: 'wait=5' } });
        if (r.status === 'HELD') say('Your balance does not cover it: top up your wallet and pay again before the hold ends.', true);
      } else if (what === 'card') {
        await api('POST', `/reservations/${id}/payment`, { body: { method: 'CARD' }, headers: { 'X-Queue-Token': queue } });
        await toGateway();
      } else {
        await api('DELETE', `/reservations/${id}`);
      }
    } catch (e) {
      say(e.message, true);
    }
  };
  // The card payment is created on the gateway a moment after the request: its page is where
  // the buyer goes next (and the gateway sends them back here).
  const toGateway = async () => {
    for (let i = 0; i < 40; i += 1) {
      const [newest] = await api('GET', `/payments?reservationId=${id}`);
      if (newest?.checkoutUrl) { location.href = newest.checkoutUrl; return; }
      if (newest && newest.status !== 'NEW') break;
      await new Promise((done) => setTimeout(done, 250));
    }
    say('The card payment could not be started: pay again, by card or from your wallet.', true);
  };
  const draw = (r) => {
    current = r;
    const rows = [
      h('p', {}, h('span', { class: `status ${r.status}`, id: 'status' }, r.status), r.failureReason ? h('span', { class: 'muted', id: 'reason' }, ` ${r.failureReason}`) : null),
      h('p', {}, `Seats ${r.seatNos.join(', ')}`, r.amount ? ` · ${won(r.amount)}` : ''),
    ];
    if (r.status === 'HELD') {
      rows.push(h('p', {}, 'Held for you for ', h('b', { id: 'countdown' }), '.'),
        h('p', {}, h('button', { id: 'pay', onclick: () => act('pay') }, 'Pay from my wallet'), ' ',
          h('button', { id: 'pay-card', onclick: () => act('card') }, 'Pay by card'), ' ',
          h('button', { id: 'cancel', class: 'quiet', onclick: () => act('cancel') }, 'Cancel')));
    } else if (r.status === 'PAYING' && r.paymentMethod === 'CARD') {
      rows.push(h('p', {}, 'Waiting for the card payment. ', h('button', { id: 'to-gateway', onclick: toGateway }, 'Open the payment page')));
    }
    rows.push(h('h2', {}, 'Timeline'), h('ol', { class: 'timeline', id: 'timeline' }, (r.timeline || []).map((e) => h('li', {}, `${e.type} `, h('span', { class: 'muted' }, when(e.at))))));
    box.replaceChildren(...rows);
    countdown();
  };
  follow(`/reservations/${id}/events`, (name, r) => { if (name === 'reservation') draw(r); });
}

async function reservations() {
  const mine = await api('GET', '/reservations?limit=50');
  show(h('h1', {}, 'My reservations'), h('section', {}, h('table', {},
    h('tr', {}, h('th', {}, 'Made'), h('th', {}, 'Seats'), h('th', {}, 'Status'), h('th', {})),
    mine.data.map((r) => h('tr', {},
      h('td', {}, when(r.createdAt)), h('td', {}, r.seatNos.join(', ')),
      h('td', {}, h('span', { class: `status ${r.status}` }, r.status)),
      h('td', {}, h('a', { href: `#/reservation/${r.id}` }, 'Open')))))));
}

async function wallet() {
  const w = await api('GET', '/wallets/me');
  const history = await api('GET', '/wallets/me/history?limit=50');
  const amount = h('input', { id: 'topup-amount', type: 'number', min: 1, max: 10000000, value: 50000 });
  show(h('h1', {}, 'Wallet'),
    h('section', {}, h('p', {}, 'Balance ', h('span', { class: 'big', id: 'balance' }, won(w.balance))),
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api('POST', '/wallets/me/charges', { body: { amount: Number(amount.value) }, headers: { 'Idempotency-Key': crypto.randomUUID() } });
          say('Topped up.');
          wallet();
        } catch (err) { say(err.message, true); }
      } }, h('label', {}, 'Top up (won)', amount), h('button', { id: 'topup', type: 'submit' }, 'Top up'))),
    h('section', {}, h('h2', {}, 'History'), h('table', { id: 'history' },
      h('tr', {}, h('th', {}, 'When'), h('th', {}, 'What'), h('th', {}, 'Amount'), h('th', {}, 'Balance after')),
      history.data.map((e) => h('tr', {}, h('td', {}, when(e.at)), h('td', {}, e.kind, e.reason ? h('span', { class: 'muted' }, ` ${e.reason}`) : null),
        h('td', {}, won(e.amount)), h('td', {}, e.balanceAfter === null || e.balanceAfter === undefined ? '' : won(e.balanceAfter)))))));
}

/// The organizer's page: concerts and their schedules (add, cancel), the ranking, the
/// deliveries to the data platform that failed (retry), and the dead letters (replay, discard).
async function organizer() {
  const list = await api('GET', '/concerts?limit=50', { auth: false });
  const name = h('input', { id: 'concert-name', required: true, maxlength: 200 });
  const host = h('input', { id: 'concert-host', required: true, maxlength: 200 });
  const blocks = [h('section', {}, h('h2', {}, 'New concert'), h('form', { onsubmit: async (e) => {
    e.preventDefault();
    try { await api('POST', '/concerts', { body: { name: name.value, host: host.value } }); organizer(); } catch (err) { say(err.message, true); }
  } }, h('label', {}, 'Name', name), h('label', {}, 'Host', host), h('button', { type: 'submit' }, 'Add')))];
  for (const c of list.data) {
    const schedules = await api('GET', `/concerts/${c.id}/schedules?limit=50`, { auth: false });
    // Sales per schedule, from its seat map: sold and held of all.
    const sales = {};
    for (const s of schedules.data) {
      const map = await api('GET', `/schedules/${s.id}/seats`, { auth: false }).catch(() => null);
      const count = (status) => map?.seats.filter((seat) => seat.status === status).length ?? 0;
      sales[s.id] = map ? `${count('SOLD')} sold, ${count('HELD')} held of ${map.seats.length}` : '';
    }
    const starts = h('input', { type: 'datetime-local', required: true });
    const opens = h('input', { type: 'datetime-local' });
    const price = h('input', { type: 'number', min: 1, value: 90000, required: true });
    const count = h('input', { type: 'number', min: 1, max: 50, value: 50, required: true });
    blocks.push(h('section', {}, h('h2', {}, c.name),
      h('table', {}, h('tr', {}, h('th', {}, 'Starts'), h('th', {}, 'Sales'), h('th', {}, 'Sale opens'), h('th', {})),
        schedules.data.map((s) => h('tr', {}, h('td', {}, when(s.startsAt)), h('td', { 'data-sales': s.id }, sales[s.id]), h('td', {}, when(s.salesOpenAt) || 'at once'),
          h('td', {}, s.cancelledAt ? `cancelled ${when(s.cancelledAt)}` : h('button', { class: 'quiet', 'data-cancel': s.id, onclick: async () => {
            if (!confirm('Cancel this schedule? Every buyer is refunded.')) return;
            try { await api('POST', `/concerts/${c.id}/schedules/${s.id}/cancellation`); organizer(); } catch (err) { say(err.message, true); }
          } }, 'Cancel'))))),
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        const body = { startsAt: new Date(starts.value).toISOString(), seatCount: Number(count.value), price: Number(price.value) };
        if (opens.value) body.salesOpenAt = new Date(opens.value).toISOString();
        try { await api('POST', `/concerts/${c.id}/schedules`, { body }); organizer(); } catch (err) { say(err.message, true); }
      } }, h('label', {}, 'Starts', starts), h('label', {}, 'Sale opens (optional)', opens), h('label', {}, 'Seats', count), h('label', {}, 'Price (won)', price), h('button', { type: 'submit' }, 'Add a schedule'))));
  }
  const ranking = await api('GET', '/rankings/concerts?window=24h&limit=10', { auth: false });
  blocks.push(h('section', {}, h('h2', {}, 'Sales in the last 24 hours'), h('table', { id: 'ranking' },
    h('tr', {}, h('th', {}, 'Concert'), h('th', {}, 'Seats sold')),
    ranking.data.map((r) => h('tr', {}, h('td', {}, r.name || r.concertId), h('td', {}, String(r.confirmedSeats)))))));
  const failed = await api('GET', '/external-data/deliveries?status=FAILED&limit=20');
  blocks.push(h('section', {}, h('h2', {}, 'Failed deliveries to the data platform'), failed.data.length ? h('table', {},
    h('tr', {}, h('th', {}, 'Reservation'), h('th', {}, 'Attempts'), h('th', {}, 'Last error'), h('th', {})),
    failed.data.map((d) => h('tr', {}, h('td', {}, d.reservationId), h('td', {}, String(d.attempts)), h('td', {}, d.lastError || ''),
      h('td', {}, h('button', { class: 'quiet', onclick: async () => {
        try { await api('POST', `/external-data/deliveries/${d.id}/retry`); say('Retrying.'); organizer(); } catch (err) { say(err.message, true); }
      } }, 'Retry'))))) : h('p', { class: 'muted' }, 'None.')));
  const dead = await api('GET', '/dead-letters?limit=50');
  const deadAct = (letter, how) => async () => {
    try {
      if (how === 'replay') await api('POST', `/dead-letters/${letter.seq}/replay`);
      else if (confirm('Discard this dead letter? Its message is not handled.')) await api('DELETE', `/dead-letters/${letter.seq}`);
      else return;
      say(how === 'replay' ? 'Replayed.' : 'Discarded.');
      organizer();
    } catch (err) { say(err.message, true); }
  };
  blocks.push(h('section', { id: 'dead-letters' }, h('h2', {}, `Dead letters (${dead.total})`), dead.data.length ? h('table', {},
    h('tr', {}, h('th', {}, 'Event'), h('th', {}, 'Consumer'), h('th', {}, 'Why'), h('th', {}, 'When'), h('th', {})),
    dead.data.map((l) => h('tr', { 'data-letter': l.seq }, h('td', {}, l.eventType || l.originalSubject), h('td', {}, l.consumer), h('td', {}, l.reason), h('td', {}, when(l.failedAt)),
      h('td', {}, l.replayable ? h('button', { class: 'quiet', 'data-replay': l.seq, onclick: deadAct(l, 'replay') }, 'Replay') : null, ' ',
        h('button', { class: 'quiet', 'data-discard': l.seq, onclick: deadAct(l, 'discard') }, 'Discard'))))) : h('p', { class: 'muted' }, 'None.')));
  show(h('h1', {}, 'Organizer'), ...blocks);
}

// ---- routing --------------------------------------------------------------------------------

async function route() {
  page.abort();
  page = new AbortController();
  renderNav();
  const [, where, id] = location.hash.split('/');
  if (!session.get()) return signIn();
  try {
    switch (where) {
      case 'sale': return await sale(id);
      case 'reservation': return reservation(id);
      case 'reservations': return await reservations();
      case 'wallet': return await wallet();
      case 'organizer': return await organizer();
      default: return await concerts();
    }
  } catch (e) {
    if (e.status === 401) { session.clear(); return route(); }
    show(h('section', {}, h('p', { class: 'bad' }, e.message)));
  }
}

window.addEventListener('hashchange', route);
// Back from the card gateway's page (`?reservation=<id>&paymentId=…&status=…`): show the
// reservation, whose stream tells how the payment ended.
const back = new URLSearchParams(location.search).get('reservation');
if (back) history.replaceState(null, '', `/#/reservation/${back}`);
route();
