'use strict';
'require baseclass';

/*
 * A small QR code encoder (ISO/IEC 18004), written for this page so that no
 * library or CDN is needed: byte mode, error correction level M, versions 1
 * to 10 (up to 213 bytes), Reed-Solomon over GF(256), all 8 masks tried and
 * the one with the lowest penalty kept. encode(bytes) gives the module
 * matrix (true = dark); canvas(matrix, scale) draws it with a quiet zone.
 */

/* Per version 1..10 at level M: EC codewords per block, [blocks, data codewords] groups. */
var BLOCKS_M = [
	null,
	[ 10, [ [ 1, 16 ] ] ],
	[ 16, [ [ 1, 28 ] ] ],
	[ 26, [ [ 1, 44 ] ] ],
	[ 18, [ [ 2, 32 ] ] ],
	[ 24, [ [ 2, 43 ] ] ],
	[ 16, [ [ 4, 27 ] ] ],
	[ 18, [ [ 4, 31 ] ] ],
	[ 22, [ [ 2, 38 ], [ 2, 39 ] ] ],
	[ 22, [ [ 3, 36 ], [ 2, 37 ] ] ],
	[ 26, [ [ 4, 43 ], [ 1, 44 ] ] ]
];
/* Centres of the alignment patterns per version. */
var ALIGN = [ null, [], [ 6, 18 ], [ 6, 22 ], [ 6, 26 ], [ 6, 30 ], [ 6, 34 ],
	[ 6, 22, 38 ], [ 6, 24, 42 ], [ 6, 26, 46 ], [ 6, 28, 50 ] ];
var MAX_VERSION = 10;

/* GF(256) with the polynomial x^8 + x^4 + x^3 + x^2 + 1. */
var EXP = [], LOG = [];
(function() {
	var x = 1;
	for (var i = 0; i < 255; i++) {
		EXP[i] = x;
		LOG[x] = i;
		x <<= 1;
		if (x & 0x100)
			x ^= 0x11d;
	}
	for (var j = 255; j < 512; j++)
		EXP[j] = EXP[j - 255];
})();

function gfMul(a, b) {
	return (a && b) ? EXP[LOG[a] + LOG[b]] : 0;
}

/* The generator polynomial of degree n (coefficients, highest first, leading 1 dropped). */
function generator(n) {
	var g = [ 1 ];
	for (var i = 0; i < n; i++) {
		var next = [];
		for (var k = 0; k <= g.length; k++)
			next[k] = (k < g.length ? g[k] : 0) ^ (k > 0 ? gfMul(g[k - 1], EXP[i]) : 0);
		g = next;
	}
	return g.slice(1);
}

/* The n EC codewords of `data`. */
function rsRemainder(data, n) {
	var gen = generator(n), rem = [];
	for (var i = 0; i < n; i++)
		rem.push(0);
	data.forEach(function(byte) {
		var factor = byte ^ rem.shift();
		rem.push(0);
		for (var k = 0; k < n; k++)
			rem[k] ^= gfMul(gen[k], factor);
	});
	return rem;
}

function dataCapacity(version) {
	return BLOCKS_M[version][1].reduce(function(sum, g) { return sum + g[0] * g[1]; }, 0);
}

/* The data codewords: mode, count, bytes, terminator, padding. */
function dataCodewords(bytes, version) {
	var bits = [];
	function put(value, len) {
		for (var i = len - 1; i >= 0; i--)
			bits.push((value >>> i) & 1);
	}
	var capacity = dataCapacity(version) * 8;
	put(4, 4);
	put(bytes.length, version < 10 ? 8 : 16);
	bytes.forEach(function(b) { put(b, 8); });
	put(0, Math.min(4, capacity - bits.length));
	while (bits.length % 8)
		bits.push(0);
	var out = [];
	for (var i = 0; i < bits.length; i += 8)
		out.push(parseInt(bits.slice(i, i + 8).join(''), 2));
	for (var pad = 0xec; out.length < capacity / 8; pad ^= 0xec ^ 0x11)
		out.push(pad);
	return out;
}

/* Data split into blocks, EC added, interleaved. */
function interleave(data, version) {
	var ecLen = BLOCKS_M[version][0], blocks = [], at = 0;
	BLOCKS_M[version][1].forEach(function(g) {
		for (var b = 0; b < g[0]; b++) {
			var d = data.slice(at, at + g[1]);
			at += g[1];
			blocks.push({ data: d, ec: rsRemainder(d, ecLen) });
		}
	});
	var out = [], longest = Math.max.apply(null, blocks.map(function(b) { return b.data.length; }));
	for (var i = 0; i < longest; i++)
		blocks.forEach(function(b) { if (i < b.data.length) out.push(b.data[i]); });
	for (var j = 0; j < ecLen; j++)
		blocks.forEach(function(b) { out.push(b.ec[j]); });
	return out;
}

function Grid(version) {
	this.size = version * 4 + 17;
	this.dark = [];
	this.fixed = [];
	for (var r = 0; r < this.size; r++) {
		this.dark.push(new Array(this.size).fill(false));
		this.fixed.push(new Array(this.size).fill(false));
	}
}

Grid.prototype.set = function(row, col, dark) {
	this.dark[row][col] = !!dark;
	this.fixed[row][col] = true;
};

function finder(g, row, col) {
	for (var r = -1; r <= 7; r++)
		for (var c = -1; c <= 7; c++) {
			var y = row + r, x = col + c;
			if (y < 0 || x < 0 || y >= g.size || x >= g.size)
				continue;
			var ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
			g.set(y, x, ring !== 2 && ring !== 4);
		}
}

function functionPatterns(g, version) {
	finder(g, 0, 0);
	finder(g, 0, g.size - 7);
	finder(g, g.size - 7, 0);
	for (var i = 8; i < g.size - 8; i++) {
		g.set(6, i, i % 2 === 0);
		g.set(i, 6, i % 2 === 0);
	}
	var centres = ALIGN[version], last = centres.length - 1;
	centres.forEach(function(r, i) {
		centres.forEach(function(c, j) {
			if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0))
				return; /* where the finders are */
			for (var dr = -2; dr <= 2; dr++)
				for (var dc = -2; dc <= 2; dc++)
					g.set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
		});
	});
	/* Reserve the format areas (written after masking) and the dark module. */
	formatBits(g, 0);
	if (version >= 7) {
		var rem = version;
		for (var k = 0; k < 12; k++)
			rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
		var bits = (version << 12) | rem;
		for (var b = 0; b < 18; b++) {
			var on = (bits >>> b) & 1, a = g.size - 11 + b % 3, z = Math.floor(b / 3);
			g.set(z, a, on);
			g.set(a, z, on);
		}
	}
}

/* The 15 format bits (level M = 00, then the mask) in both copies. */
function formatBits(g, mask) {
	var data = (0 << 3) | mask, rem = data;
	for (var i = 0; i < 10; i++)
		rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
	var bits = ((data << 10) | rem) ^ 0x5412, n = g.size;
	function bit(k) { return (bits >>> k) & 1; }
	for (var k = 0; k <= 5; k++)
		g.set(k, 8, bit(k));
	g.set(7, 8, bit(6));
	g.set(8, 8, bit(7));
	g.set(8, 7, bit(8));
	for (k = 9; k < 15; k++)
		g.set(8, 14 - k, bit(k));
	for (k = 0; k < 8; k++)
		g.set(8, n - 1 - k, bit(k));
	for (k = 8; k < 15; k++)
		g.set(n - 15 + k, 8, bit(k));
	g.set(n - 8, 8, 1);
}

function placeData(g, codewords) {
	var bitIndex = 0, total = codewords.length * 8, upward = true;
	for (var right = g.size - 1; right >= 1; right -= 2) {
		if (right === 6)
			right = 5;
		for (var step = 0; step < g.size; step++) {
			var row = upward ? g.size - 1 - step : step;
			for (var j = 0; j < 2; j++) {
				var col = right - j;
				if (g.fixed[row][col])
					continue;
				var on = bitIndex < total && ((codewords[bitIndex >>> 3] >>> (7 - (bitIndex & 7))) & 1);
				g.dark[row][col] = !!on;
				bitIndex++;
			}
		}
		upward = !upward;
	}
}

var MASKS = [
	function(r, c) { return (r + c) % 2 === 0; },
	function(r, c) { return r % 2 === 0; },
	function(r, c) { return c % 3 === 0; },
	function(r, c) { return (r + c) % 3 === 0; },
	function(r, c) { return (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0; },
	function(r, c) { return (r * c) % 2 + (r * c) % 3 === 0; },
	function(r, c) { return ((r * c) % 2 + (r * c) % 3) % 2 === 0; },
	function(r, c) { return ((r + c) % 2 + (r * c) % 3) % 2 === 0; }
];

function applyMask(g, mask) {
	for (var r = 0; r < g.size; r++)
		for (var c = 0; c < g.size; c++)
			if (!g.fixed[r][c] && MASKS[mask](r, c))
				g.dark[r][c] = !g.dark[r][c];
}

/* The penalty score of the four rules of the standard. */
function penalty(m) {
	var n = m.length, score = 0, dark = 0;
	function lines(get) {
		for (var a = 0; a < n; a++) {
			var run = 1, seq = [];
			for (var b = 0; b < n; b++) {
				var v = get(a, b);
				seq.push(v ? 1 : 0);
				if (b > 0) {
					if (v === get(a, b - 1)) {
						run++;
					} else {
						if (run >= 5)
							score += run - 2;
						run = 1;
					}
				}
			}
			if (run >= 5)
				score += run - 2;
			var s = seq.join('');
			var re = /(?=(10111010000|00001011101))/g, mm;
			while ((mm = re.exec(s)) !== null) {
				score += 40;
				re.lastIndex++;
			}
		}
	}
	lines(function(a, b) { return m[a][b]; });
	lines(function(a, b) { return m[b][a]; });
	for (var r = 0; r < n; r++)
		for (var c = 0; c < n; c++) {
			if (m[r][c])
				dark++;
			if (r < n - 1 && c < n - 1 && m[r][c] === m[r + 1][c] && m[r][c] === m[r][c + 1] && m[r][c] === m[r + 1][c + 1])
				score += 3;
		}
	score += 10 * Math.floor(Math.abs(dark * 100 / (n * n) - 50) / 5);
	return score;
}

/* UTF-8 bytes of a string. */
function utf8(text) {
	var bytes = [];
	unescape(encodeURIComponent(text)).split('').forEach(function(ch) { bytes.push(ch.charCodeAt(0)); });
	return bytes;
}

function encode(input) {
	var bytes = typeof input === 'string' ? utf8(input) : Array.from(input);
	var version = 1;
	while (version <= MAX_VERSION && dataCapacity(version) * 8 < 4 + (version < 10 ? 8 : 16) + bytes.length * 8)
		version++;
	if (version > MAX_VERSION)
		throw new Error('Too long for a QR code of version ' + MAX_VERSION + ' (' + bytes.length + ' bytes)');
	var codewords = interleave(dataCodewords(bytes, version), version);
	var best = null, bestScore = Infinity;
	for (var mask = 0; mask < 8; mask++) {
		var g = new Grid(version);
		functionPatterns(g, version);
		placeData(g, codewords);
		applyMask(g, mask);
		formatBits(g, mask);
		var s = penalty(g.dark);
		if (s < bestScore) {
			best = g;
			bestScore = s;
		}
	}
	return best.dark;
}

/* A canvas showing `matrix`, `scale` pixels a module, with a 4-module quiet zone. */
function canvas(matrix, scale) {
	scale = scale || 4;
	var n = matrix.length, side = (n + 8) * scale;
	var cv = document.createElement('canvas');
	cv.width = cv.height = side;
	var ctx = cv.getContext('2d');
	ctx.fillStyle = '#fff';
	ctx.fillRect(0, 0, side, side);
	ctx.fillStyle = '#000';
	for (var r = 0; r < n; r++)
		for (var c = 0; c < n; c++)
			if (matrix[r][c])
				ctx.fillRect((c + 4) * scale, (r + 4) * scale, scale, scale);
	return cv;
}

return baseclass.extend({
	encode: encode,
	canvas: canvas,
	MAX_VERSION: MAX_VERSION
});
