#!/usr/bin/env node
// s3rver-atomic.js — test helper: runs the pinned s3rver with object writes that replace an object whole, as S3's do.
//
// Usage: node t/lib/s3rver-atomic.js S3RVER_DIR [s3rver's own arguments...]
//
// s3rver 3.7.1 writes an object in place (the file is truncated, then written) and its
// metadata with plain writeFile, so a GET racing a PUT of the same key can answer 200 with an
// empty or partial body: `recover` read an empty head.json while the archiver rewrote it (t/076
// under load).  S3 replaces an object atomically, and Backstop relies on that.  Here every
// object and metadata file is written to a temporary name in its directory and renamed over
// the old one once complete; the temporary names do not end in s3rver's object suffix, so
// listings never show them.
'use strict';

const path = require('path');
const crypto = require('crypto');
const { Transform } = require('stream');

const root = process.argv[2];
if (!root) {
	console.error('usage: s3rver-atomic.js S3RVER_DIR [arguments...]');
	process.exit(2);
}
process.argv.splice(2, 1);
const fs = require(require.resolve('fs-extra', { paths: [root] }));
const { pick, pickBy } = require(require.resolve('lodash', { paths: [root] }));
const FilesystemStore = require(path.join(root, 'lib/stores/filesystem.js'));
const S3Object = require(path.join(root, 'lib/models/object.js'));

function tempName(file) {
	return `${file}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
}

async function writeWhole(file, data) {
	const tmp = tempName(file);
	await fs.writeFile(tmp, data);
	await fs.rename(tmp, file);
}

FilesystemStore.prototype.putObject = async function putObject(object) {
	const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
	const tmp = tempName(objectPath);

	await fs.mkdirp(path.dirname(objectPath));
	const [size, md5] = await new Promise((resolve, reject) => {
		const out = fs.createWriteStream(tmp);
		const md5Context = crypto.createHash('md5');
		let totalLength = 0;

		out.on('error', reject);
		// 'close': the data is in the file, not only handed to the stream.
		out.on('close', () => resolve([totalLength, md5Context.digest('hex')]));
		if (Buffer.isBuffer(object.content)) {
			md5Context.update(object.content);
			totalLength = object.content.length;
			out.end(object.content);
		} else {
			object.content.on('error', reject);
			object.content
				.pipe(new Transform({
					transform(chunk, encoding, callback) {
						md5Context.update(chunk, encoding);
						totalLength += chunk.length;
						callback(null, chunk);
					},
				}))
				.on('error', reject)
				.pipe(out);
		}
	}).catch(async (err) => {
		await fs.remove(tmp).catch(() => {});
		throw err;
	});
	await fs.rename(tmp, objectPath);
	await this.putMetadata(object.bucket, object.key, object.metadata, md5);
	return { size, md5 };
};

// s3rver's own putMetadata, with each file replaced whole.
FilesystemStore.prototype.putMetadata = async function putMetadata(bucket, key, metadata, md5) {
	const json = {
		...pick(metadata, S3Object.ALLOWED_METADATA),
		...pickBy(metadata, (value, name) => name.startsWith('x-amz-meta-')),
	};

	if (md5) await writeWhole(this.getResourcePath(bucket, key, 'object.md5'), md5);
	await writeWhole(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
};

require(path.join(root, 'bin/s3rver.js'));
