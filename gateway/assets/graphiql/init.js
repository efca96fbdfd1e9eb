// Starts GraphiQL against this gateway. Served from the gateway itself (the page's CSP allows
// scripts from its own origin only). Credentials go in the Headers tab, next to the purpose:
//   { "Authorization": "Bearer sgk_…", "X-Purpose": "essential" }
(function () {
  var url = new URL('/graphql', window.location.href).toString();
  var subscriptionUrl = url.replace(/^http/, 'ws') + '/ws';
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: subscriptionUrl });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultHeaders: JSON.stringify({ 'X-Purpose': 'essential' }, null, 2),
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
