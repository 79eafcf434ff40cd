/* s3xml.h — the XML of the S3 REST API: error documents, multipart and delete answers and list pages read, request bodies written. */
#ifndef BACKSTOP_S3XML_H
#define BACKSTOP_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

/*
 * What a server sends is untrusted.  The reader is not a general XML parser: it finds
 * <Tag>text</Tag> by the fixed element names of the S3 API, which hold text only, and
 * unescapes the five predefined entities and numeric character references.  Anything else
 * after '&' (an entity a DOCTYPE would declare, a bare '&') makes the text malformed: no
 * entity is ever expanded.  Bodies are bounded by the caller (storage_s3.c: 16 MiB for
 * answers, 64 kB for error documents); every scan is linear in the body.
 */

/* The first <tag>...</tag> in [p, end): its text in [*vstart, *vend).  tag is at most
 * 60 bytes. */
bool s3xml_find(const char *p, const char *end, const char *tag, const char **vstart, const char **vend);
/* The unescaped text of the first <tag> in [p, end) into out; false when it is missing
 * or malformed (out is then empty). */
bool s3xml_text(const char *p, const char *end, const char *tag, strbuf *out);
/* Unescape [s, s+len) into out (reset first); -1 when malformed. */
int s3xml_unescape(const char *s, size_t len, strbuf *out);
/* Append s escaped as element text. */
void s3xml_escape(strbuf *out, const char *s);

/* <Code> and <Message> of an error document: empty strings when absent or malformed. */
void s3xml_error_doc(const char *body, size_t len, strbuf *code, strbuf *msg);

/* <UploadId> of a CreateMultipartUpload answer: false when absent, empty or malformed. */
bool s3xml_upload_id(const char *body, size_t len, strbuf *id);

/*
 * One ListObjectsV2 page: cb is called for each <Contents> entry, in the page's order,
 * with its unescaped <Key> (non-empty, NUL-free) and its <Size>; *truncated and
 * *next_token (<NextContinuationToken>, empty when absent) say whether another page
 * follows.  A page that is not a whole <ListBucketResult> document (a body with a NUL
 * byte, cut short, without <IsTruncated>true|false</IsTruncated>), or whose entry lacks
 * its key or size, is ERRCODE_PROTOCOL: a listing is never taken from half an answer.
 * A non-BS_OK return of cb stops and is returned.
 */
typedef int (*s3xml_entry_cb) (void *ctx, const char *key, uint64_t size, bs_error *err);
int s3xml_list_page(const char *body, size_t len, s3xml_entry_cb cb, void *ctx, bool *truncated,
					strbuf *next_token, bs_error *err);

/*
 * A DeleteObjects answer: cb is called for each <Error> entry (a key not deleted) with its
 * unescaped <Key> (non-empty, NUL-free), <Code> (non-empty) and <Message> ("" when absent).
 * <Deleted> entries are not reported.  An answer that is not a whole <DeleteResult>
 * document, or an <Error> entry without key or code, is ERRCODE_PROTOCOL.  A non-BS_OK
 * return of cb stops and is returned.
 */
typedef int (*s3xml_delete_error_cb) (void *ctx, const char *key, const char *code, const char *message,
									  bs_error *err);
int s3xml_delete_result(const char *body, size_t len, s3xml_delete_error_cb cb, void *ctx, bs_error *err);

#endif
