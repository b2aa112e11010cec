// apollo's hasura client sends no admin secret (PrefectHQ/server services/apollo/src/executors.js:
// hasuraExecutor posts to HASURA_API_URL with a Content-Type header only). This proxy runs in
// apollo's pod, listens on 127.0.0.1 only (so only apollo reaches it) and adds the secret, so
// hasura itself can refuse every request without it. It forwards GraphQL POSTs on the paths apollo
// uses and nothing else: hasura's metadata and SQL APIs (/v1/query, /v2/query) stay unreachable.
'use strict'
const http = require('http')

const upstream = new URL(process.env.HASURA_UPSTREAM || 'http://localhost:3000')
const secret = process.env.HASURA_GRAPHQL_ADMIN_SECRET
const port = Number(process.env.HASURA_PROXY_PORT || 3001)
const PATHS = new Set(['/v1alpha1/graphql', '/v1/graphql'])
const LIMIT = 5 * 1024 * 1024 // apollo's own body limit (APOLLO_API_BODY_LIMIT default)

if (!secret) {
  console.error('hasura-proxy: HASURA_GRAPHQL_ADMIN_SECRET is not set')
  process.exit(1)
}
const agent = new http.Agent({ keepAlive: true })

function reply (res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ errors: [{ message }] }))
}

http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.end('OK')
    return
  }
  if (req.method !== 'POST' || !PATHS.has(req.url)) {
    reply(res, 404, 'hasura-proxy forwards GraphQL POSTs only')
    req.resume()
    return
  }
  const chunks = []
  let size = 0
  req.on('data', (chunk) => {
    size += chunk.length
    if (size > LIMIT) {
      reply(res, 413, 'request too large')
      req.destroy()
      return
    }
    chunks.push(chunk)
  })
  req.on('end', () => {
    if (res.writableEnded) return
    const body = Buffer.concat(chunks)
    // Only these headers go upstream: a caller cannot choose a hasura role or session variables.
    const out = http.request({
      hostname: upstream.hostname,
      port: upstream.port,
      path: req.url,
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        'content-length': body.length,
        'x-hasura-admin-secret': secret
      }
    }, (answer) => {
      res.writeHead(answer.statusCode, {
        'content-type': answer.headers['content-type'] || 'application/json'
      })
      answer.pipe(res)
    })
    out.on('error', () => reply(res, 502, 'hasura is not reachable'))
    out.end(body)
  })
}).listen(port, '127.0.0.1', () => console.log(`hasura-proxy on 127.0.0.1:${port} -> ${upstream.origin}`))
