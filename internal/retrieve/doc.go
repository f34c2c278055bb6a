// Package retrieve is the document search core of retrieval (RAG): it
// chunks documents, indexes the chunks for keyword (BM25) and vector
// search, fuses the two, filters on document attributes and enforces each
// document's ACL before anything is ranked. The gateway's retrieval stage,
// the Files and Vector Stores APIs and `switchyard ingest` build on
// Collection.
package retrieve
