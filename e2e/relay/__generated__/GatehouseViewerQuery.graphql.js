/**
 * @generated SignedSource<<d513d125d8326aef1ad642f2bd6afa37>>
 * @lightSyntaxTransform
 */

/* eslint-disable */

'use strict';

var node = (function(){
var v0 = [
  {
    "alias": null,
    "args": null,
    "concreteType": "User",
    "kind": "LinkedField",
    "name": "me",
    "plural": false,
    "selections": [
      {
        "alias": null,
        "args": null,
        "kind": "ScalarField",
        "name": "id",
        "storageKey": null
      },
      {
        "alias": null,
        "args": null,
        "kind": "ScalarField",
        "name": "username",
        "storageKey": null
      }
    ],
    "storageKey": null
  }
];
return {
  "fragment": {
    "argumentDefinitions": [],
    "kind": "Fragment",
    "metadata": null,
    "name": "GatehouseViewerQuery",
    "selections": (v0/*:: as any*/),
    "type": "Query",
    "abstractKey": null
  },
  "kind": "Request",
  "operation": {
    "argumentDefinitions": [],
    "kind": "Operation",
    "name": "GatehouseViewerQuery",
    "selections": (v0/*:: as any*/)
  },
  "params": {
    "cacheID": "8d88875afe52a79afe15c43fbf801dca",
    "id": null,
    "metadata": {},
    "name": "GatehouseViewerQuery",
    "operationKind": "query",
    "text": "query GatehouseViewerQuery {\n  me {\n    id\n    username\n  }\n}\n"
  }
};
})();

node.hash = "4805a6ef64ebaef32ee61709e1f205c3";

export default node;
