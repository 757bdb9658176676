// Imported first by main.jsx, so it runs before any library creates a <style> element.
//
// The page's Content-Security-Policy allows stylesheets from 'self' and <style> elements
// carrying the response's nonce, never 'unsafe-inline'. Monaco (the editor) and a few UI
// libraries write their dynamic rules (themes, decorations, scroll locks) into <style>
// elements they create themselves, without a nonce. Every <style> created through
// document.createElement gets the nonce the server put on the page, so those rules apply
// while styles injected by anyone else (markup in a response, say) are still refused.
const nonce = document.getElementById("graphiql")?.dataset.styleNonce;

if (nonce) {
  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (tagName, options) {
    const element = createElement.call(this, tagName, options);
    if (String(tagName).toLowerCase() === "style") {
      element.nonce = nonce;
    }
    return element;
  };
}
