// The Event Grid topic deployment events are published to besides the deployment-events queue, in the CloudEvents 1.0
// schema (EVENT_GRID_TOPIC_ENDPOINT). Local auth (access keys, SAS tokens) is off: the broker publishes with its
// identity, which holds EventGrid Data Sender on this topic and nothing else of it.

@description('Topic name: 3-50 letters, digits and hyphens.')
@minLength(3)
@maxLength(50)
param name string

@description('Azure region of the topic.')
param location string

@description('Principal id of the identity that publishes: the broker\'s.')
param publisherPrincipalId string

param tags object = {}

// EventGrid Data Sender: Microsoft.EventGrid/events/send/action and reads of the topic.
var eventGridDataSender = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'd5a91429-5739-47e2-a06b-3470a27159e7')

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    // Subscribers' endpoints and the app publish over the topic's public endpoint, with Entra tokens only.
    publicNetworkAccess: 'Enabled'
  }
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, publisherPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: eventGridDataSender
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
