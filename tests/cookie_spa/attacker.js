// What a page of another origin can do without a preflight: submit a form. With
// enctype="text/plain" a field named `{"query": …, "x": "` and the value `"}` make the body
// `{"query": …, "x": "="}`, valid JSON: the classic way to post JSON cross-site.
"use strict";

window.postForm = (action, query) => {
  const form = document.createElement("form");
  form.method = "POST";
  form.action = action;
  form.enctype = "text/plain";
  const field = document.createElement("input");
  field.type = "hidden";
  field.name = `${JSON.stringify({ query }).slice(0, -1)}, "x": "`;
  field.value = '"}';
  form.append(field);
  document.body.append(form);
  form.submit();
};
